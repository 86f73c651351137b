"""Pull runs: users (matched, never merged silently), courses, enrollments, milestones, activity and grades."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

from appliance.auth.usernames import username_key
from appliance.connectors.contract import Activity, Analytics, Capability, Connector, CourseResources, Milestones
from appliance.connectors.errors import Throttled, Transient
from appliance.connectors.records import ExternalUser
from appliance.core.clock import Clock
from appliance.db.database import Database
from appliance.sync import metrics
from appliance.sync.model import Job, Provider
from appliance.sync.progress import count_per_course
from appliance.sync.uplink import UplinkGate

log = logging.getLogger(__name__)
STAGE_RETRIES = 8
MILESTONE_CURSOR = "milestones_since"
ACTIVITY_CURSOR = "activity_since"
COURSE_STATES = {"unpublished", "available", "completed", "deleted"}


class Puller:
    """One run of one job for one provider; upserts are idempotent so a retried stage is harmless."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        provider: Provider,
        connector: Connector,
        gate: UplinkGate,
        *,
        capabilities: frozenset[Capability] = frozenset(),
        analytics: bool = False,
    ) -> None:
        self.db, self.clock, self.provider, self.connector, self.gate = db, clock, provider, connector, gate
        self.capabilities = capabilities
        # Page views cost one request per learner and course: only when configured and offered.
        self.analytics = analytics and Capability.ANALYTICS in capabilities
        self.counts: dict[str, int] = {}
        self.stage = ""
        self.label = str(provider.id)

    def count(self, kind: str, n: int = 1) -> None:
        """Add to this run's counters."""
        self.counts[kind] = self.counts.get(kind, 0) + n
        metrics.PULLED.labels(self.label, kind).inc(n)

    async def resilient(self, stage: str, fn: Callable[[], Awaitable[None]]) -> None:
        """Run a stage; on throttling or a lost uplink wait (not failing the run) and redo the stage."""
        self.stage = stage
        for attempt in range(STAGE_RETRIES):
            await self.gate.wait_open(fail_on_auth=True)
            try:
                await fn()
                self.gate.report_success()
                return
            except Throttled as exc:
                self.gate.report_throttled(exc)
            except Transient as exc:
                self.gate.report_transient(exc)
                if attempt == STAGE_RETRIES - 1:
                    raise
        raise Transient(f"stage {stage} kept failing")

    async def run(self, job: Job, since: str | None) -> None:
        """The stages of a job, in order."""
        await self.resilient("courses", self.pull_courses)
        per_resource = {Capability.ACTIVITY, Capability.COURSE_RESOURCES} <= self.capabilities
        if job is Job.PULL:
            await self.resilient("users", self.pull_users)
            await self.resilient("enrollments", self.pull_enrollments)
            if Capability.MILESTONES in self.capabilities:
                await self.resilient("milestones", lambda: self.pull_milestones(since))
            if per_resource:  # enrollments changed: who counts in which course may have too
                await self.resilient("resources", self.pull_course_resources)
                await self.count_progress()
        elif Capability.ACTIVITY in self.capabilities:
            if per_resource:
                await self.resilient("resources", self.pull_course_resources)
            await self.resilient("activity", lambda: self.pull_learner_activity(since))
            if per_resource:
                await self.count_progress()
        else:
            await self.resilient("activity", self.pull_activity)

    # ---- users -----------------------------------------------------------------------------------
    async def pull_users(self) -> None:
        """Upsert every upstream user as a mapping, matched or not."""
        pid = self.provider.id
        by_uuid, by_doc, by_name = {}, {}, {}
        doc_dupes: set[str] = set()
        for row in await self.db.fetchall("SELECT id, uuid, doc_id, username_key FROM users"):
            by_uuid[row["uuid"]] = row["id"]
            by_name[row["username_key"]] = row["id"]
            if row["doc_id"]:
                doc_dupes.add(row["doc_id"]) if row["doc_id"] in by_doc else None
                by_doc[row["doc_id"]] = row["id"]
        for doc in doc_dupes:
            by_doc.pop(doc, None)  # ambiguous: an admin decides
        mapped = {
            r["external_user_id"]: r["user_id"]
            for r in await self.db.fetchall(
                "SELECT external_user_id, user_id FROM provider_user_mappings WHERE provider_id = ?", (pid,)
            )
        }
        taken = {uid for uid in mapped.values() if uid is not None}
        async for page in self.connector.users():
            rows = []
            for user in page:
                user_id, how = mapped.get(user.external_id), None
                if user_id is None:
                    user_id, how = self.match(user, by_uuid, by_doc, by_name)
                    if user_id in taken:
                        user_id, how = None, None  # already linked to another upstream user
                    if user_id is not None:
                        taken.add(user_id)
                        mapped[user.external_id] = user_id
                rows.append((pid, user_id, user.external_id, user.sis_id, user.login_id, user.name, user.email, how))
            async with self.db.transaction() as tx:
                await tx.executemany(
                    "INSERT INTO provider_user_mappings (provider_id, user_id, external_user_id, external_sis_id,"
                    " external_login_id, external_name, external_email, matched_by) VALUES (?,?,?,?,?,?,?,?)"
                    " ON CONFLICT (provider_id, external_user_id) DO UPDATE SET"
                    " user_id = COALESCE(provider_user_mappings.user_id, excluded.user_id),"
                    " matched_by = COALESCE(provider_user_mappings.matched_by, excluded.matched_by),"
                    " external_sis_id = excluded.external_sis_id, external_login_id = excluded.external_login_id,"
                    " external_name = excluded.external_name, external_email = excluded.external_email,"
                    " updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                    rows,
                )
            self.count("users", len(page))

    @staticmethod
    def match(
        user: ExternalUser, by_uuid: dict[str, int], by_doc: dict[str, int], by_name: dict[str, int]
    ) -> tuple[int | None, str | None]:
        """SIS/login id = our uuid, then SIS id = doc id, then login = username; else unmatched."""
        if user.sis_id and user.sis_id in by_uuid:
            return by_uuid[user.sis_id], "sis_id"
        if user.login_id and user.login_id in by_uuid:
            return by_uuid[user.login_id], "login_id"
        if user.sis_id and user.sis_id in by_doc:
            return by_doc[user.sis_id], "doc_id"
        if user.login_id and username_key(user.login_id) in by_name:
            return by_name[username_key(user.login_id)], "username"
        return None, None

    # ---- courses and what hangs off them ----------------------------------------------------------
    async def pull_courses(self) -> None:
        """Upsert every course."""
        async for page in self.connector.courses():
            rows = [
                (
                    self.provider.id,
                    c.external_id,
                    c.name[:200],
                    c.code,
                    c.state if c.state in COURSE_STATES else "available",
                    c.external_url,
                    c.start_at,
                    c.end_at,
                )
                for c in page
            ]
            async with self.db.transaction() as tx:
                await tx.executemany(
                    "INSERT INTO courses (provider_id, external_id, name, code, state, external_url, start_at, end_at)"
                    " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (provider_id, external_id) DO UPDATE SET"
                    " name = excluded.name, code = excluded.code, state = excluded.state,"
                    " external_url = excluded.external_url, start_at = excluded.start_at, end_at = excluded.end_at,"
                    " updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                    rows,
                )
            self.count("courses", len(page))

    async def each_course(self, fn: Callable[[Any], Awaitable[None]]) -> None:
        """Run fn for every live course, several at once (the provider's adaptive limit bounds them)."""

        pending = iter(await self._courses())

        async def worker() -> None:  # a few workers share the list: no task (or waiter) per course
            for course in pending:
                async with self.gate.limit:
                    await fn(course)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(self.gate.limit.maximum):
                    group.create_task(worker())
        except ExceptionGroup as failures:  # surface the first classified failure to resilient()
            raise failures.exceptions[0] from None

    async def _courses(self) -> list[Any]:
        return await self.db.fetchall(
            "SELECT id, external_id FROM courses WHERE provider_id = ? AND state IN ('available', 'completed')"
            " ORDER BY id",
            (self.provider.id,),
        )

    async def _user_map(self) -> dict[str, int]:
        rows = await self.db.fetchall(
            "SELECT external_user_id, user_id FROM provider_user_mappings"
            " WHERE provider_id = ? AND user_id IS NOT NULL",
            (self.provider.id,),
        )
        return {r["external_user_id"]: r["user_id"] for r in rows}

    async def pull_enrollments(self) -> None:
        """Student enrollments of mapped learners; a local row keeps its own state (its push may be pending)."""
        users = await self._user_map()

        async def one(course: Any) -> None:
            async for page in self.connector.enrollments(course["external_id"]):
                rows = [
                    (users[e.user_external_id], course["id"], e.external_id, e.state)
                    for e in page
                    if e.user_external_id in users
                ]
                if rows:
                    async with self.db.transaction() as tx:
                        await tx.executemany(
                            "INSERT INTO enrollments (user_id, course_id, external_id, state, source)"
                            " VALUES (?,?,?,?,'upstream') ON CONFLICT (user_id, course_id) DO UPDATE SET"
                            " external_id = excluded.external_id, state = CASE WHEN enrollments.source = 'local'"
                            " THEN enrollments.state ELSE excluded.state END,"
                            " updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                            rows,
                        )
                self.count("enrollments", len(page))

        await self.each_course(one)

    async def pull_milestones(self, since: str | None) -> None:
        """Submissions and grades since the cursor."""
        users = await self._user_map()

        async def one(course: Any) -> None:
            async for page in cast(Milestones, self.connector).milestones(course["external_id"], since):
                rows = [
                    (
                        users[m.user_external_id],
                        course["id"],
                        m.external_id,
                        m.type,
                        int(m.is_completed),
                        m.score,
                        m.occurred_at,
                    )
                    for m in page
                    if m.user_external_id in users
                ]
                if rows:
                    async with self.db.transaction() as tx:
                        await tx.executemany(
                            "INSERT INTO milestones (user_id, course_id, external_id, type, is_completed, score,"
                            " occurred_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT (course_id, external_id, type)"
                            " DO UPDATE SET is_completed = excluded.is_completed, score = excluded.score,"
                            " occurred_at = excluded.occurred_at",
                            rows,
                        )
                self.count("milestones", len(page))

        await self.each_course(one)

    async def pull_activity(self) -> None:
        """Daily report: time spent (enrollment totals, optional analytics) and current grades."""
        users = await self._user_map()

        async def one(course: Any) -> None:
            async for page in self.connector.enrollments(course["external_id"]):
                for e in page:
                    user_id = users.get(e.user_external_id)
                    if user_id is None:
                        continue
                    views = (
                        await cast(Analytics, self.connector).page_views(course["external_id"], e.user_external_id)
                        if self.analytics
                        else None
                    )
                    await self._record_activity(user_id, course["id"], e.total_activity_time, views, e.external_id)
                    if e.current_score is not None:
                        await self.db.execute(
                            "INSERT INTO outcomes (user_id, course_id, type, value) VALUES (?, ?, 'grade', ?)"
                            " ON CONFLICT (user_id, course_id, type) DO UPDATE SET value = excluded.value,"
                            " updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                            (user_id, course["id"], f"{e.current_score:g}"),
                        )
                self.count("activity", len(page))

        await self.each_course(one)

    async def _record_activity(
        self, user_id: int, course_id: int, total: int, views: int | None, external_id: str
    ) -> None:
        async with self.db.transaction() as tx:
            cur = await tx.execute(
                "SELECT total_time FROM activities WHERE user_id = ? AND course_id = ? ORDER BY id DESC LIMIT 1",
                (user_id, course_id),
            )
            last = await cur.fetchone()
            previous = last["total_time"] if last else 0
            if last is not None and previous == total and views is None:
                return  # nothing new: do not grow the table every day
            await tx.execute(
                "INSERT INTO activities (user_id, course_id, type, total_time, time_delta, page_views, external_id,"
                " recorded_at) VALUES (?, ?, 'interaction', ?, ?, ?, ?, ?)",
                (user_id, course_id, total, max(0, total - previous), views or 0, external_id, self.clock.iso_now()),
            )

    async def pull_course_resources(self) -> None:
        """Capability.COURSE_RESOURCES: each course's assigned resources, replaced whole when they changed; their
        number is the course's expected milestones."""

        async def one(course: Any) -> None:
            resources = await cast(CourseResources, self.connector).course_resources(course["external_id"])
            async with self.db.transaction() as tx:
                held = {
                    r[0]
                    for r in await tx.execute_fetchall(
                        "SELECT external_id FROM course_resources WHERE course_id = ?", (course["id"],)
                    )
                }
                if held != resources:
                    await tx.execute("DELETE FROM course_resources WHERE course_id = ?", (course["id"],))
                    await tx.executemany(
                        "INSERT INTO course_resources (course_id, external_id) VALUES (?, ?)",
                        [(course["id"], r) for r in sorted(resources)],
                    )
                await tx.execute(
                    "UPDATE courses SET total_milestones = ? WHERE id = ? AND total_milestones != ?",
                    (len(resources), course["id"], len(resources)),
                )
            self.count("resources", len(resources))

        await self.each_course(one)

    async def count_progress(self) -> None:
        """Per-resource progress → milestones and time spent per course (local only: no uplink needed)."""
        self.stage = "progress"
        milestones, activities = await count_per_course(self.db, self.clock, self.provider.id)
        self.count("progress_milestones", milestones)
        self.count("progress_activities", activities)

    async def pull_learner_activity(self, since: str | None) -> None:
        """Capability.ACTIVITY: progress per learner and resource since the cursor, upserted (latest totals win).

        A record of an unmapped learner is counted but not stored; its course may be unknown (NULL).
        """
        users = await self._user_map()
        courses = {
            r["external_id"]: r["id"]
            for r in await self.db.fetchall(
                "SELECT id, external_id FROM courses WHERE provider_id = ?", (self.provider.id,)
            )
        }
        async for page in cast(Activity, self.connector).activity(since):
            rows = [
                (
                    self.provider.id,
                    users[a.user_external_id],
                    courses.get(a.course_external_id) if a.course_external_id else None,
                    a.external_id,
                    max(0, int(a.total_time_s)),
                    None if a.progress is None else min(1.0, max(0.0, float(a.progress))),
                    a.completed_at,
                    a.occurred_at,
                )
                for a in page
                if a.user_external_id in users
            ]
            if rows:
                async with self.db.transaction() as tx:
                    await tx.executemany(
                        "INSERT INTO learner_progress (provider_id, user_id, course_id, external_id, total_time,"
                        " progress, completed_at, occurred_at) VALUES (?,?,?,?,?,?,?,?)"
                        " ON CONFLICT (provider_id, user_id, external_id) DO UPDATE SET"
                        " course_id = excluded.course_id, total_time = excluded.total_time,"
                        " progress = excluded.progress, completed_at = excluded.completed_at,"
                        " occurred_at = excluded.occurred_at, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
                        " WHERE learner_progress.total_time IS NOT excluded.total_time"
                        " OR learner_progress.progress IS NOT excluded.progress"
                        " OR learner_progress.completed_at IS NOT excluded.completed_at"
                        " OR learner_progress.occurred_at IS NOT excluded.occurred_at"
                        " OR learner_progress.course_id IS NOT excluded.course_id",
                        rows,
                    )
            self.count("activity", len(page))
