"""Article views and reading time, buffered in memory and written in batches off the request path."""

import logging
from collections import OrderedDict
from dataclasses import dataclass

from appliance.content.metrics import VIEWS_DROPPED, VIEWS_WRITTEN
from appliance.db import Database

log = logging.getLogger(__name__)
MAX_BEACON_SECONDS = 600
# A user's first beacon seen by this process: the reader flushes every 15 s, so more is not credible.
FIRST_BEACON_CAP_S = 30


class ReadingClock:
    """Caps credited reading time by the wall-clock time since the user's previous beacon.

    A page cannot have shown an article for longer than the time that passed, whatever it claims: a burst
    of beacons claiming 600 s each is credited only the seconds that really elapsed between them. The
    clock is per process (bounded, least recently seen users dropped first); a user's first beacon in a
    process gets at most FIRST_BEACON_CAP_S.
    """

    def __init__(self, max_users: int = 100_000) -> None:
        self.max_users = max_users
        self._last: OrderedDict[int, float] = OrderedDict()

    def credit(self, user_id: int, claimed: int, now: float) -> int:
        """The whole seconds to credit for a beacon claiming `claimed` at monotonic time `now`."""
        last = self._last.pop(user_id, None)
        # no allowance per beacon (it would add up across a burst); rounding absorbs the page timer's jitter
        allowed = FIRST_BEACON_CAP_S if last is None else max(0.0, now - last)
        self._last[user_id] = now
        if len(self._last) > self.max_users:
            self._last.popitem(last=False)
        return int(round(min(claimed, allowed)))


@dataclass(frozen=True)
class View:
    """One article page served."""

    user_id: int | None
    facility_id: int | None
    library_id: int
    path: str
    title: str
    viewed_at: str


@dataclass(frozen=True)
class Reading:
    """Seconds of visible reading reported by the page beacon."""

    user_id: int
    facility_id: int | None
    library_id: int
    path: str
    day: str
    seconds: int


class ViewRecorder:
    """Collects views and reading time; `flush` writes them in one transaction."""

    def __init__(self, db: Database, batch_max: int) -> None:
        self.db = db
        self.batch_max = batch_max
        # While the database fails we keep at most this many, dropping (and counting) the rest.
        self.capacity = batch_max * 20
        self.views: list[View] = []
        self.readings: list[Reading] = []

    def add_view(self, view: View) -> bool:
        """Queue a view; True when the batch is full and a flush is worth doing now."""
        if len(self.views) >= self.capacity:
            VIEWS_DROPPED.inc()
            return False
        self.views.append(view)
        return len(self.views) >= self.batch_max

    def add_reading(self, reading: Reading) -> None:
        """Queue reading seconds (summed per user, library, path and day when written)."""
        if len(self.readings) < self.capacity:
            self.readings.append(reading)

    async def flush(self) -> int:
        """Write everything queued; on failure the rows stay queued for the next attempt."""
        views, readings = self.views, self.readings
        if not views and not readings:
            return 0
        self.views, self.readings = [], []
        try:
            async with self.db.transaction() as tx:
                if views:
                    await tx.executemany(
                        "INSERT INTO article_views (user_id, facility_id, library_id, path, title, viewed_at)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        [(v.user_id, v.facility_id, v.library_id, v.path, v.title, v.viewed_at) for v in views])
                if readings:
                    await tx.executemany(
                        "INSERT INTO reading_time (user_id, facility_id, library_id, path, day, seconds)"
                        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, library_id, path, day) DO UPDATE"
                        " SET seconds = seconds + excluded.seconds,"
                        " updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                        [(r.user_id, r.facility_id, r.library_id, r.path, r.day, r.seconds) for r in readings])
        except Exception:
            log.exception("writing %d article views failed; will retry", len(views))
            self.views = views + self.views
            self.readings = readings + self.readings
            raise
        VIEWS_WRITTEN.inc(len(views))
        return len(views)
