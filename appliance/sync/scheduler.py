"""Scheduled runs with a dedupe id per window, missed-window catch-up, and the per-provider run queue."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from appliance.core.clock import Clock, iso
from appliance.db.database import Database
from appliance.sync.cron import Cron
from appliance.sync.model import Job, RunState, Trigger

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Schedule:
    """The cron expression of each job."""

    pull: Cron
    report: Cron

    def of(self, job: Job) -> Cron:
        """Expression of a job."""
        return self.pull if job is Job.PULL else self.report


def window_id(provider_id: int, job: Job, fired: datetime) -> str:
    """The dedupe id of one scheduled window, e.g. `3:pull:2026-11-26T07:00:00.000Z`."""
    return f"{provider_id}:{job.value}:{iso(fired)}"


def zone(name: str | None) -> ZoneInfo:
    """The facility's zone (UTC when unknown)."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


async def provider_zone(db: Database, facility_id: int | None) -> ZoneInfo:
    """Timezone of the provider's facility, or of the default facility for an all-facility provider."""
    name = await db.fetchval("SELECT timezone FROM facilities WHERE id = ?", (facility_id or 1,))
    return zone(name)


async def enqueue(db: Database, provider_id: int, job: Job, trigger: Trigger, window: str | None) -> int | None:
    """Queue a run; a window already queued or run before gives None (that is the dedupe)."""
    result = await db.execute(
        "INSERT INTO sync_runs (provider_id, job, trigger, window_id) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (window_id) DO NOTHING",
        (provider_id, job.value, trigger.value, window),
    )
    return result.lastrowid if result.rowcount else None


async def tick(db: Database, clock: Clock, schedule: Schedule, *, startup: bool = False) -> list[int]:
    """Queue the latest due window of every job of every enabled provider (at most once per window)."""
    queued: list[int] = []
    now = clock.now()
    rows = await db.fetchall("SELECT id, facility_id, created_at FROM providers WHERE state = 'enabled'")
    for row in rows:
        tz = await provider_zone(db, row["facility_id"])
        created = datetime.fromisoformat(row["created_at"].replace("Z", "+00:00"))
        for job in Job:
            fired = schedule.of(job).last_at_or_before(now, tz)
            if fired < created:
                continue  # windows before the provider existed are not "missed"
            trigger = Trigger.CATCH_UP if startup and (now - fired).total_seconds() > 60 else Trigger.SCHEDULE
            run_id = await enqueue(db, row["id"], job, trigger, window_id(row["id"], job, fired))
            if run_id is not None:
                log.info(
                    "queued %s run %d for provider %d (%s window %s)",
                    job.value,
                    run_id,
                    row["id"],
                    trigger.value,
                    iso(fired),
                )
                queued.append(run_id)
    return queued


async def recover_interrupted(db: Database) -> int:
    """Runs left `running` by a crash go back to the queue (their cursors never advanced)."""
    result = await db.execute(
        "UPDATE sync_runs SET state = ?, stage = '' WHERE state = ?", (RunState.QUEUED.value, RunState.RUNNING.value)
    )
    return result.rowcount
