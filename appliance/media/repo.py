"""SQL of the video cache: every query on videos and their side tables."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from appliance.core.clock import iso
from appliance.core.singleflight import SingleFlight
from appliance.db.database import Database
from appliance.db.events import EventType, add_event
from appliance.media.models import AttemptOutcome, Availability, FailureReason, SourceKind

MAX_REPORT_S = 600.0  # the most one position report may claim (the API refuses more)
WATCH_JITTER_S = 1.0
_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ','now')"


@dataclass(frozen=True)
class Stored:
    """What storing a video produced."""

    storage_key: str
    size_bytes: int
    etag: str
    thumbnail_key: str | None


# Playback checks are cached this long per process: a stream request then costs no SQLite round trip.
# Changes made in this process apply at once; other worker processes see them within this time.
PLAY_CACHE_S = 2.0


class VideoRepo:
    """Queries over the media tables."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._play: dict[int, tuple[float, sqlite3.Row | None, frozenset[int]]] = {}
        self._loading: SingleFlight[tuple[sqlite3.Row | None, frozenset[int]]] = SingleFlight()

    def forget(self, video_id: int) -> None:
        """Drop the cached playback facts of a video (after any change to it)."""
        self._play.pop(video_id, None)

    async def play_info(self, video_id: int) -> tuple[sqlite3.Row | None, frozenset[int]]:
        """The row and visible facilities of a video, cached for PLAY_CACHE_S."""
        hit = self._play.get(video_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1], hit[2]
        # One load per video at a time: when the entry expires under load, every request in flight for
        # that video would otherwise query SQLite at once (dozens of thread hand-offs for the same row).
        return await self._loading.run(video_id, lambda: self._load_play(video_id))

    async def _load_play(self, video_id: int) -> tuple[sqlite3.Row | None, frozenset[int]]:
        row = await self.get(video_id)
        facilities = frozenset(await self.facilities_of(video_id)) if row is not None else frozenset()
        if len(self._play) > 10_000:
            self._play.clear()
        self._play[video_id] = (time.monotonic() + PLAY_CACHE_S, row, facilities)
        return row, facilities

    async def get(self, video_id: int) -> sqlite3.Row | None:
        """One video."""
        return await self.db.fetchone("SELECT * FROM videos WHERE id = ?", (video_id,))

    async def rename(self, video_id: int, title: str) -> None:
        """Give a video the title staff chose (the player's cached copy is dropped)."""
        await self.db.execute(
            "UPDATE videos SET title = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?",
            (title, video_id))
        self._play.pop(video_id, None)

    async def by_source(self, url: str) -> sqlite3.Row | None:
        """The video cached from this URL, if any."""
        return await self.db.fetchone("SELECT * FROM videos WHERE source_url = ?", (url,))

    async def by_external(self, extractor: str, external_id: str) -> sqlite3.Row | None:
        """The video with this extractor id, if any."""
        return await self.db.fetchone(
            "SELECT * FROM videos WHERE extractor = ? AND external_id = ?", (extractor, external_id)
        )

    async def add_download(self, url: str, added_by: int | None) -> tuple[int, bool]:
        """Insert a pending download unless the URL is known; return (id, created)."""
        async with self.db.transaction() as tx:
            cur = await tx.execute("SELECT id FROM videos WHERE source_url = ?", (url,))
            found = await cur.fetchone()
            if found is not None:
                return int(found[0]), False
            cur = await tx.execute(
                "INSERT INTO videos (source_kind, source_url, title, added_by) VALUES (?, ?, ?, ?)",
                (SourceKind.DOWNLOAD.value, url, url[:200], added_by),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid, True

    async def add_upload(self, *, title: str, filename: str, added_by: int | None) -> int:
        """Insert an upload row in `processing` (the file is being stored)."""
        res = await self.db.execute(
            "INSERT INTO videos (source_kind, title, original_filename, availability, added_by)"
            " VALUES (?, ?, ?, ?, ?)",
            (SourceKind.UPLOAD.value, title, filename, Availability.PROCESSING.value, added_by),
        )
        assert res.lastrowid is not None
        return res.lastrowid

    async def list(self, *, availability: Availability | None, facility_id: int | None,
                   visible_to: Sequence[int] | None, limit: int, offset: int) -> tuple[list[sqlite3.Row], int]:
        """A page of videos and the total, filtered by state and facility visibility."""
        where, params = self._filters(availability, facility_id, visible_to)
        total = int(await self.db.fetchval(f"SELECT COUNT(*) FROM videos v {where}", params))
        rows = await self.db.fetchall(
            f"SELECT v.* FROM videos v {where} ORDER BY v.id DESC LIMIT ? OFFSET ?", (*params, limit, offset)
        )
        return rows, total

    @staticmethod
    def _filters(availability: Availability | None, facility_id: int | None,
                 visible_to: Sequence[int] | None) -> tuple[str, tuple[Any, ...]]:
        clauses: list[str] = []
        params: list[Any] = []
        if availability is not None:
            clauses.append("v.availability = ?")
            params.append(availability.value)
        if facility_id is not None:
            clauses.append("EXISTS (SELECT 1 FROM video_facilities f WHERE f.video_id = v.id AND f.facility_id = ?)")
            params.append(facility_id)
        if visible_to is not None:
            marks = ",".join("?" * len(visible_to)) or "NULL"
            clauses.append(
                f"EXISTS (SELECT 1 FROM video_facilities f WHERE f.video_id = v.id AND f.facility_id IN ({marks}))"
            )
            params.extend(visible_to)
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", tuple(params)

    async def facilities_of(self, video_id: int) -> list[int]:
        """Facilities a video is visible in."""
        rows = await self.db.fetchall(
            "SELECT facility_id FROM video_facilities WHERE video_id = ? ORDER BY facility_id", (video_id,)
        )
        return [int(r[0]) for r in rows]

    async def set_visibility(self, video_id: int, facility_ids: Sequence[int], *, scope: Sequence[int] | None) -> None:
        """Replace the facilities a video is visible in (only within `scope` unless scope is None)."""
        self.forget(video_id)
        async with self.db.transaction() as tx:
            if scope is None:
                await tx.execute("DELETE FROM video_facilities WHERE video_id = ?", (video_id,))
            else:
                marks = ",".join("?" * len(scope)) or "NULL"
                await tx.execute(
                    f"DELETE FROM video_facilities WHERE video_id = ? AND facility_id IN ({marks})",
                    (video_id, *scope),
                )
            await tx.executemany(
                "INSERT OR IGNORE INTO video_facilities (video_id, facility_id) VALUES (?, ?)",
                [(video_id, f) for f in facility_ids],
            )

    async def existing_facilities(self, ids: Sequence[int]) -> set[int]:
        """Which of these facility ids exist."""
        if not ids:
            return set()
        marks = ",".join("?" * len(ids))
        rows = await self.db.fetchall(f"SELECT id FROM facilities WHERE id IN ({marks})", tuple(ids))
        return {int(r[0]) for r in rows}

    async def is_visible(self, video_id: int, facility_ids: Sequence[int]) -> bool:
        """Whether a video is visible in any of these facilities."""
        if not facility_ids:
            return False
        marks = ",".join("?" * len(facility_ids))
        return bool(await self.db.fetchval(
            f"SELECT 1 FROM video_facilities WHERE video_id = ? AND facility_id IN ({marks}) LIMIT 1",
            (video_id, *facility_ids),
        ))

    async def start_attempt(self, video_id: int) -> int:
        """Mark the video processing, count an attempt and log it; return the attempt number."""
        self.forget(video_id)
        async with self.db.transaction() as tx:
            await tx.execute(
                f"UPDATE videos SET availability = ?, attempts = attempts + 1, next_attempt_at = NULL,"
                f" updated_at = {_NOW} WHERE id = ?",
                (Availability.PROCESSING.value, video_id),
            )
            cur = await tx.execute("SELECT attempts FROM videos WHERE id = ?", (video_id,))
            row = await cur.fetchone()
            attempt = int(row[0]) if row else 0
            await tx.execute(
                "INSERT INTO video_download_attempts (video_id, attempt, outcome) VALUES (?, ?, ?)",
                (video_id, attempt, AttemptOutcome.RUNNING.value),
            )
            return attempt

    async def finish_attempt(self, video_id: int, outcome: AttemptOutcome, kind: FailureReason | None = None,
                             error: str | None = None) -> None:
        """Close the running attempt log row."""
        self.forget(video_id)
        await self.db.execute(
            f"UPDATE video_download_attempts SET outcome = ?, failure_kind = ?, error = ?, finished_at = {_NOW}"
            " WHERE id = (SELECT MAX(id) FROM video_download_attempts WHERE video_id = ? AND outcome = 'running')",
            (outcome.value, kind.value if kind else None, error, video_id),
        )

    async def log_waiting(self, video_id: int, error: str, next_attempt_at: str,
                          kind: FailureReason = FailureReason.UNREACHABLE) -> None:
        """Record that a job waited for the uplink or the storage (no attempt spent) and show why on the video."""
        self.forget(video_id)
        async with self.db.transaction() as tx:
            cur = await tx.execute("SELECT attempts FROM videos WHERE id = ?", (video_id,))
            row = await cur.fetchone()
            await tx.execute(
                f"INSERT INTO video_download_attempts (video_id, attempt, outcome, failure_kind, error, finished_at)"
                f" VALUES (?, ?, ?, ?, ?, {_NOW})",
                (video_id, int(row[0]) if row else 0, AttemptOutcome.WAITING.value, kind.value, error),
            )
            await tx.execute(
                f"UPDATE videos SET availability = ?, last_error = ?, next_attempt_at = ?, updated_at = {_NOW}"
                " WHERE id = ?",
                (Availability.PENDING.value, error, next_attempt_at, video_id),
            )

    async def refund_attempt(self, video_id: int) -> None:
        """Give back an attempt that failed only because the source became unreachable."""
        self.forget(video_id)
        await self.db.execute(
            "UPDATE videos SET attempts = MAX(attempts - 1, 0) WHERE id = ?", (video_id,)
        )

    async def set_state(self, video_id: int, availability: Availability, *, error: str | None = None,
                        next_attempt_at: str | None = None) -> None:
        """Change a video's availability with its reason."""
        self.forget(video_id)
        async with self.db.transaction() as tx:
            cur = await tx.execute(
                f"UPDATE videos SET availability = ?, last_error = ?, next_attempt_at = ?, updated_at = {_NOW}"
                " WHERE id = ? RETURNING id, title, source_kind, source_url, attempts",
                (availability.value, error, next_attempt_at, video_id),
            )
            row = await cur.fetchone()
            if availability is Availability.ERROR and row is not None:
                await add_event(tx, EventType.VIDEO_FAILED, {"video": _event_video(row), "error": error})

    async def set_metadata(self, video_id: int, meta: dict[str, Any]) -> None:
        """Store metadata from yt-dlp's info JSON or ffprobe."""
        self.forget(video_id)
        cols = ("extractor", "external_id", "title", "description", "channel", "duration_s", "width", "height",
                "format")
        sets = ", ".join(f"{c} = COALESCE(?, {c})" for c in cols)
        await self.db.execute(
            f"UPDATE videos SET {sets}, updated_at = {_NOW} WHERE id = ?",
            (*[meta.get(c) for c in cols], video_id),
        )

    async def mark_available(self, video_id: int, stored: Stored) -> None:
        """The file is stored: record where, make the video available and close its attempt as succeeded.

        One transaction, so nobody ever sees an available video whose attempt still says running.
        """
        self.forget(video_id)
        async with self.db.transaction() as tx:
            await tx.execute(
                f"UPDATE videos SET availability = ?, storage_key = ?, size_bytes = ?, etag = ?, thumbnail_key = ?,"
                f" last_error = NULL, next_attempt_at = NULL, available_at = {_NOW}, updated_at = {_NOW} WHERE id = ?",
                (Availability.AVAILABLE.value, stored.storage_key, stored.size_bytes, stored.etag,
                 stored.thumbnail_key, video_id),
            )
            cur = await tx.execute("SELECT id, title, source_kind, source_url, attempts, size_bytes FROM videos"
                                   " WHERE id = ?", (video_id,))
            row = await cur.fetchone()
            if row is not None:
                await add_event(tx, EventType.VIDEO_AVAILABLE,
                                {"video": {**_event_video(row), "size_bytes": row["size_bytes"]}})
            await tx.execute(
                f"UPDATE video_download_attempts SET outcome = ?, finished_at = {_NOW} WHERE id = (SELECT MAX(id)"
                " FROM video_download_attempts WHERE video_id = ? AND outcome = 'running')",
                (AttemptOutcome.SUCCEEDED.value, video_id),
            )

    async def mark_queued(self, video_id: int) -> None:
        """Record that a download job was published for the video."""
        await self.db.execute(f"UPDATE videos SET queued_at = {_NOW} WHERE id = ?", (video_id,))

    async def reset_for_retry(self, video_id: int) -> None:
        """Manual retry: back to pending with a fresh attempt budget."""
        self.forget(video_id)
        await self.db.execute(
            f"UPDATE videos SET availability = ?, attempts = 0, last_error = NULL, next_attempt_at = NULL,"
            f" updated_at = {_NOW} WHERE id = ?",
            (Availability.PENDING.value, video_id),
        )

    async def attempts_log(self, video_id: int) -> list[dict[str, Any]]:
        """The download attempts of a video, oldest first."""
        rows = await self.db.fetchall(
            "SELECT attempt, outcome, failure_kind, error, started_at, finished_at FROM video_download_attempts"
            " WHERE video_id = ? ORDER BY id", (video_id,),
        )
        return [dict(r) for r in rows]

    async def delete(self, video_id: int) -> None:
        """Remove a video row (side tables cascade)."""
        self.forget(video_id)
        await self.db.execute("DELETE FROM videos WHERE id = ?", (video_id,))

    async def used_bytes(self) -> int:
        """Total size of stored videos, for the quota."""
        return int(await self.db.fetchval("SELECT COALESCE(SUM(size_bytes), 0) FROM videos") or 0)

    async def all_ids(self) -> set[int]:
        """Every video id."""
        return {int(r[0]) for r in await self.db.fetchall("SELECT id FROM videos")}

    async def save_position(self, user_id: int, video_id: int, position_s: float, completed: bool) -> None:
        """Upsert a learner's resume position."""
        await self.db.execute(
            "INSERT INTO video_positions (user_id, video_id, position_s, completed) VALUES (?, ?, ?, ?)"
            f" ON CONFLICT (user_id, video_id) DO UPDATE SET position_s = excluded.position_s,"
            f" completed = MAX(completed, excluded.completed), updated_at = {_NOW}",
            (user_id, video_id, position_s, int(completed)),
        )

    async def report_playing(self, user_id: int, video_id: int, facility_id: int, day: str, position_s: float,
                             completed: bool, watched_s: float, cap_s: float) -> float:
        """Save the resume position and credit watch time; returns the seconds credited.

        Credit never runs ahead of the wall clock: each (user, video) keeps the moment up to which playing
        has been credited, a report is credited at most the time from there to now (plus one second of
        timer jitter, which cannot add up across reports because the moment advances by what was credited),
        and never more than cap_s (the video's duration) per report. A first report may cover cap_s of
        playing that happened before it. One transaction, so parallel reports are serialised.
        """
        now = datetime.now(UTC)
        async with self.db.transaction() as tx:
            cur = await tx.execute("SELECT credited_until FROM video_positions WHERE user_id = ? AND video_id = ?",
                                   (user_id, video_id))
            found = await cur.fetchone()
            until = datetime.fromisoformat(found[0]) if found is not None and found[0] else None
            start = now - timedelta(seconds=cap_s) if until is None else max(
                until, now - timedelta(seconds=MAX_REPORT_S))
            room = (now - start).total_seconds() + WATCH_JITTER_S
            credited = max(0.0, min(watched_s, cap_s, room))
            credited_until = iso(start + timedelta(seconds=credited))
            await tx.execute(
                "INSERT INTO video_positions (user_id, video_id, position_s, completed, credited_until)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, video_id) DO UPDATE"
                " SET position_s = excluded.position_s,"
                " completed = MAX(completed, excluded.completed), credited_until = excluded.credited_until,"
                f" updated_at = {_NOW}",
                (user_id, video_id, position_s, int(completed), credited_until),
            )
            if credited > 0:
                await tx.execute(
                    "INSERT INTO video_watch_activity (user_id, video_id, facility_id, day, seconds)"
                    f" VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, video_id, day) DO UPDATE"
                    f" SET seconds = seconds + excluded.seconds, last_at = {_NOW}",
                    (user_id, video_id, facility_id, day, credited),
                )
        return credited

    async def add_watch_time(self, user_id: int, video_id: int, facility_id: int, day: str, seconds: float) -> None:
        """Add seconds watched to the learner's activity for that day."""
        await self.db.execute(
            "INSERT INTO video_watch_activity (user_id, video_id, facility_id, day, seconds) VALUES (?, ?, ?, ?, ?)"
            f" ON CONFLICT (user_id, video_id, day) DO UPDATE SET seconds = seconds + excluded.seconds,"
            f" last_at = {_NOW}",
            (user_id, video_id, facility_id, day, seconds),
        )

    async def position(self, user_id: int, video_id: int) -> sqlite3.Row | None:
        """A learner's resume position."""
        return await self.db.fetchone(
            "SELECT position_s, completed, updated_at FROM video_positions WHERE user_id = ? AND video_id = ?",
            (user_id, video_id),
        )


def _event_video(row: Any) -> dict[str, Any]:
    """A video as its domain events carry it."""
    return {"id": row["id"], "title": row["title"], "source_kind": row["source_kind"],
            "source_url": row["source_url"], "attempts": row["attempts"]}
