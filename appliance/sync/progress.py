"""Progress reported per learner and resource (learner_progress), counted per course: milestones and time spent.

Upstreams such as Kolibri report progress per learner and resource, outside any course; a course says which
resources it assigns (course_resources, Capability.COURSE_RESOURCES). A learner enrolled in a course gets one
`resource_completion` milestone per assigned resource they started (completed or not, the score is the
progress 0..1) and an `activities` row whenever the sum of their time on the course's resources changes.

Everything here is recomputed from the stored totals on every run, never added up from deltas: a run killed
half-way, a repeated pull or a resource pulled twice cannot count anything twice, and the next run converges.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import aiosqlite

from appliance.core.clock import Clock
from appliance.db.database import Database

MILESTONE_TYPE = "resource_completion"
ACTIVITY_SOURCE = "resources"  # activities.external_id of the rows written here


@dataclass(frozen=True)
class ResourceProgress:
    """One learner's latest totals on one resource (a learner_progress row)."""

    user_id: int
    resource: str
    total_time: int
    progress: float | None
    completed_at: str | None
    occurred_at: str | None

    @property
    def completed(self) -> bool:
        """Done: the upstream recorded a completion, or the progress reached 1."""
        return self.completed_at is not None or (self.progress is not None and self.progress >= 1.0)


@dataclass(frozen=True)
class CourseMilestone:
    """A milestone row as it should be: (course_id, external_id) identifies it."""

    user_id: int
    course_id: int
    external_id: str
    is_completed: bool
    score: float | None
    occurred_at: str | None


def milestone_id(resource: str, user_id: int) -> str:
    """Milestones are unique per course and external id, so the learner is part of the id."""
    return f"{resource}#{user_id}"


def per_course(
    progress: Iterable[ResourceProgress],
    assigned: Mapping[int, Iterable[str]],
    enrolled: Iterable[tuple[int, int]],
) -> tuple[list[CourseMilestone], dict[tuple[int, int], int]]:
    """Milestones and total seconds per (user, course) from per-resource progress.

    `assigned` maps a course to its resources, `enrolled` lists (user, course) pairs. Only resources the course
    assigns and the learner started count; a pair without any is left out (no milestone, no time).
    """
    by_user: dict[int, dict[str, ResourceProgress]] = {}
    for row in progress:
        by_user.setdefault(row.user_id, {})[row.resource] = row
    milestones: list[CourseMilestone] = []
    totals: dict[tuple[int, int], int] = {}
    for user_id, course_id in sorted(set(enrolled)):
        mine = by_user.get(user_id)
        if not mine:
            continue
        started = [mine[r] for r in sorted(set(assigned.get(course_id, ()))) if r in mine]
        if not started:
            continue
        for row in started:
            milestones.append(
                CourseMilestone(
                    user_id=user_id,
                    course_id=course_id,
                    external_id=milestone_id(row.resource, user_id),
                    is_completed=row.completed,
                    score=row.progress,
                    occurred_at=row.completed_at or row.occurred_at,
                )
            )
        totals[(user_id, course_id)] = sum(row.total_time for row in started)
    return milestones, totals


async def count_per_course(db: Database, clock: Clock, provider_id: int) -> tuple[int, int]:
    """Bring one provider's resource milestones and time spent in line with its learner_progress, in one
    transaction; returns (milestone rows written or removed, activity rows added)."""
    async with db.transaction() as tx:
        progress = [
            ResourceProgress(r[0], r[1], r[2], r[3], r[4], r[5])
            for r in await tx.execute_fetchall(
                "SELECT user_id, external_id, total_time, progress, completed_at, occurred_at FROM learner_progress"
                " WHERE provider_id = ?",
                (provider_id,),
            )
        ]
        assigned: dict[int, set[str]] = {}
        for course_id, resource in await tx.execute_fetchall(
            "SELECT cr.course_id, cr.external_id FROM course_resources cr JOIN courses c ON c.id = cr.course_id"
            " WHERE c.provider_id = ?",
            (provider_id,),
        ):
            assigned.setdefault(course_id, set()).add(resource)
        enrolled = [
            (r[0], r[1])
            for r in await tx.execute_fetchall(
                "SELECT e.user_id, e.course_id FROM enrollments e JOIN courses c ON c.id = e.course_id"
                " WHERE c.provider_id = ?",
                (provider_id,),
            )
        ]
        wanted, totals = per_course(progress, assigned, enrolled)
        changed = await _write_milestones(tx, provider_id, wanted)
        added = await _write_totals(tx, provider_id, totals, clock.iso_now())
    return changed, added


async def _write_milestones(tx: aiosqlite.Connection, provider_id: int, wanted: list[CourseMilestone]) -> int:
    existing = {
        (r[1], r[2]): (r[0], r[3], bool(r[4]), r[5], r[6])
        for r in await tx.execute_fetchall(
            "SELECT m.id, m.course_id, m.external_id, m.user_id, m.is_completed, m.score, m.occurred_at"
            " FROM milestones m JOIN courses c ON c.id = m.course_id WHERE c.provider_id = ? AND m.type = ?",
            (provider_id, MILESTONE_TYPE),
        )
    }
    keep = {(m.course_id, m.external_id) for m in wanted}
    stale = [(row[0],) for key, row in existing.items() if key not in keep]
    rows = [
        (m.user_id, m.course_id, m.external_id, MILESTONE_TYPE, int(m.is_completed), m.score, m.occurred_at)
        for m in wanted
        if existing.get((m.course_id, m.external_id), (None,))[1:]
        != (m.user_id, m.is_completed, m.score, m.occurred_at)
    ]
    if stale:  # the resource left the course's lessons, or the learner left the course
        await tx.executemany("DELETE FROM milestones WHERE id = ?", stale)
    if rows:
        await tx.executemany(
            "INSERT INTO milestones (user_id, course_id, external_id, type, is_completed, score, occurred_at)"
            " VALUES (?,?,?,?,?,?,?) ON CONFLICT (course_id, external_id, type) DO UPDATE SET"
            " user_id = excluded.user_id, is_completed = excluded.is_completed, score = excluded.score,"
            " occurred_at = excluded.occurred_at",
            rows,
        )
    return len(stale) + len(rows)


async def _write_totals(
    tx: aiosqlite.Connection, provider_id: int, totals: dict[tuple[int, int], int], now: str
) -> int:
    latest = {
        (r[0], r[1]): r[2]
        for r in await tx.execute_fetchall(
            "SELECT a.user_id, a.course_id, a.total_time FROM activities a WHERE a.id IN ("
            " SELECT MAX(a2.id) FROM activities a2 JOIN courses c ON c.id = a2.course_id WHERE c.provider_id = ?"
            " GROUP BY a2.user_id, a2.course_id)",
            (provider_id,),
        )
    }
    # A pair that no longer counts anything (its resources left the lessons) drops to 0 once.
    wanted = {**{pair: 0 for pair, total in latest.items() if total}, **totals}
    rows = [
        (user_id, course_id, total, max(0, total - latest.get((user_id, course_id), 0)), ACTIVITY_SOURCE, now)
        for (user_id, course_id), total in sorted(wanted.items())
        if latest.get((user_id, course_id)) != total
    ]
    if rows:
        await tx.executemany(
            "INSERT INTO activities (user_id, course_id, type, total_time, time_delta, page_views, external_id,"
            " recorded_at) VALUES (?, ?, 'interaction', ?, ?, 0, ?, ?)",
            rows,
        )
    return len(rows)
