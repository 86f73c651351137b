"""Article views and reading time, buffered in memory and written in batches off the request path."""

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime

from appliance.content.metrics import VIEWS_DROPPED, VIEWS_WRITTEN
from appliance.db import Database

log = logging.getLogger(__name__)
MAX_BEACON_SECONDS = 600
# A user's first beacon seen by this process: the reader flushes every 15 s, so more is not credible.
FIRST_BEACON_CAP_S = 30


BEACON_JITTER_S = 1.0  # the page's one-second timer runs slightly ahead of the gaps between beacons


class ReadingClock:
    """Caps credited reading time by the wall-clock time that passed.

    Each user has the moment up to which reading has been credited; a beacon is credited at most the time
    from there to now, plus one second of timer jitter that cannot add up (the moment advances by what was
    credited, so a burst of beacons claiming 600 s each gets nothing after the first). The moment never
    lags more than one beacon's worth (MAX_BEACON_SECONDS) behind now, and a user's first beacon in this
    process may cover FIRST_BEACON_CAP_S. Per process, bounded (least recently seen users dropped first).
    """

    def __init__(self, max_users: int = 100_000) -> None:
        self.max_users = max_users
        self._until: OrderedDict[int, float] = OrderedDict()

    def credit(self, user_id: int, claimed: int, now: float) -> int:
        """The whole seconds to credit for a beacon claiming `claimed` at monotonic time `now`."""
        until = self._until.pop(user_id, None)
        start = now - FIRST_BEACON_CAP_S if until is None else max(until, now - MAX_BEACON_SECONDS)
        credited = max(0, int(round(min(claimed, now + BEACON_JITTER_S - start))))
        self._until[user_id] = start + credited
        if len(self._until) > self.max_users:
            self._until.popitem(last=False)
        return credited


def _db_time(at: datetime) -> str:
    """The database's timestamp format (as clock.iso: UTC, milliseconds, Z), made by C code: a flush writes many."""
    if at.tzinfo is not UTC:
        at = at.astimezone(UTC)
    return at.isoformat(timespec="milliseconds")[:23] + "Z"


@dataclass(frozen=True, slots=True)
class View:
    """One article page served (the time is formatted when written, not on the request)."""

    user_id: int | None
    facility_id: int | None
    library_id: int
    path: str
    title: str
    viewed_at: datetime


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
        self._writing = asyncio.Lock()

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
        """Write everything queued; on failure the rows stay queued for the next attempt.

        Flushes run one at a time, and a write once started finishes even when its caller is cancelled
        (the periodic flush at shutdown): otherwise a second flush could find the queue already taken by a
        write still in progress and return before those rows were committed, or a cancelled write could
        lose them.
        """
        return await asyncio.shield(self._write_queued())

    async def _write_queued(self) -> int:
        async with self._writing:
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
                            # A generator: the rows are made in the database's thread, one by one as
                            # SQLite takes them, not in a block on the event loop (500 rows: ~1 ms).
                            ((v.user_id, v.facility_id, v.library_id, v.path, v.title, _db_time(v.viewed_at))
                             for v in views))
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
