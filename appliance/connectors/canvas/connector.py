"""The Canvas connector: idempotent pushes keyed by SIS id = appliance uuid, and paged pulls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import quote

from appliance.connectors.canvas import mapping
from appliance.connectors.canvas.client import CanvasClient
from appliance.connectors.contract import PushOutcome, PushResult, Upstream, UserPush
from appliance.connectors.errors import NotFound, Rejected, Transient
from appliance.connectors.payload import opt_text
from appliance.connectors.records import CourseRecord, EnrollmentRecord, ExternalUser, MilestoneRecord

SIS_FINISHED = {"imported", "imported_with_messages", "failed", "failed_with_messages", "aborted",
                "restored", "partially_restored"}


def _taken(exc: Rejected) -> bool:
    """Canvas says the SIS/login id is already in use (a create raced with an earlier one)."""
    return exc.status == 400 and '"taken"' in str(exc.body).replace("'", '"')


class CanvasConnector:
    """Canvas behind the Connector protocol."""

    def __init__(self, client: CanvasClient) -> None:
        self.client = client
        self.course_sis: dict[str, str | None] = {}  # course id → its SIS id (enrollments.csv names courses so)

    def rate_remaining(self) -> float | None:
        """Canvas's last X-Rate-Limit-Remaining."""
        return self.client.remaining

    async def probe(self, timeout: float) -> None:
        """GET the account with a short timeout."""
        await self.client.probe(timeout=timeout)

    async def ensure_user(self, user: UserPush, *, create: bool, check_first: bool = True) -> PushResult:
        """Create the user unless its SIS id exists; otherwise update names/email when they differ."""
        current = await self.client.user_by_sis(user.uuid) if check_first or not create else None
        if current is None:
            if not create:
                return PushResult(PushOutcome.SKIPPED, detail="not provisioned upstream")
            try:
                created = await self.client.create_user(mapping.user_create_body(user.payload))
            except Rejected as exc:
                # Canvas keeps SIS ids unique: "taken" means it exists already (an earlier attempt whose
                # answer we lost), so adopt it instead of failing.
                found = await self.client.user_by_sis(user.uuid) if _taken(exc) else None
                if found is None:
                    raise
                current = found
            else:
                if user.deactivated:
                    await self.client.update_user(created["id"], {"user": {"event": "suspend"}})
                return PushResult(PushOutcome.CREATED, mapping.sid(created["id"]))
        external_id = mapping.sid(current["id"])
        body = mapping.user_update_body(user.payload)
        reactivate = not user.deactivated and current.get("workflow_state") == "suspended"
        if reactivate:
            body["user"]["event"] = "unsuspend"  # reactivated at the facility
        if reactivate or mapping.user_needs_update(current, user.payload):
            await self.client.update_user(external_id, body)
            return PushResult(PushOutcome.UPDATED, external_id)
        return PushResult(PushOutcome.UNCHANGED, external_id)

    async def import_users(self, users: list[UserPush], *, poll_limit_s: float = 600.0) -> bool:
        """Batch path: one SIS import (users.csv, upsert by SIS id) for many new learners.

        True when Canvas imported every row cleanly; False when it reported problems (the caller then
        falls back to the per-record path, which looks before creating). A re-import after a crash only
        updates, because Canvas keys SIS rows by SIS id.
        """
        return await self._import(mapping.users_csv([(u.payload, u.deactivated) for u in users]), poll_limit_s)

    async def import_enrollments(
        self, enrollments: list[tuple[str, str]], *, poll_limit_s: float = 600.0
    ) -> set[tuple[str, str]]:
        """Batch path: one SIS import (enrollments.csv) for many new student enrollments.

        enrollments.csv names courses by SIS id, so only courses that have one can go this way; the others
        are left to the per-record path. Canvas keys SIS enrollments by course, user and role, so a
        re-import after a crash changes nothing. Returns the pairs Canvas imported cleanly (none when it
        reported problems: the per-record path then looks before creating each).
        """
        rows, handled = [], set()
        for course_id, uuid in enrollments:
            sis = await self._course_sis_id(course_id)
            if sis:
                rows.append((sis, uuid))
                handled.add((course_id, uuid))
        if not rows or not await self._import(mapping.enrollments_csv(rows), poll_limit_s):
            return set()
        return handled

    async def _course_sis_id(self, course_id: str) -> str | None:
        if course_id not in self.course_sis:
            try:
                course = await self.client.get(f"courses/{quote(course_id, safe='')}")
            except NotFound:
                course = None
            self.course_sis[course_id] = (opt_text(course.get("sis_course_id"))
                                          if isinstance(course, dict) else None)
        return self.course_sis[course_id]

    async def _import(self, csv_text: str, poll_limit_s: float) -> bool:
        """Post one SIS import and wait for it; True when every row went in cleanly."""
        started = await self.client.sis_import(csv_text)
        state, wait, waited = started.get("workflow_state"), 0.05, 0.0
        while state not in SIS_FINISHED:
            if waited > poll_limit_s:
                raise Transient(f"SIS import {started['id']} still {state} after {poll_limit_s:.0f}s")
            await asyncio.sleep(wait)
            waited += wait
            wait = min(wait * 2, 5.0)
            state = (await self.client.sis_import_status(started["id"])).get("workflow_state")
        return state == "imported"

    async def deactivate_user(self, uuid: str) -> PushResult:
        """Suspend the login (`user[event]=suspend`); absent upstream means nothing to do."""
        current = await self.client.user_by_sis(uuid)
        if current is None:
            return PushResult(PushOutcome.SKIPPED, detail="absent upstream")
        if current.get("workflow_state") == "suspended":
            return PushResult(PushOutcome.UNCHANGED, mapping.sid(current["id"]))
        await self.client.update_user(current["id"], {"user": {"event": "suspend"}})
        return PushResult(PushOutcome.UPDATED, mapping.sid(current["id"]))

    async def ensure_enrollment(self, course_external_id: str, uuid: str) -> PushResult:
        """Look for a live enrollment first; create one only when none exists."""
        existing = await self.client.enrollments_of(course_external_id, uuid)
        if existing:
            return PushResult(PushOutcome.UNCHANGED, mapping.sid(existing[0]["id"]))
        created = await self.client.enroll(course_external_id, uuid)
        return PushResult(PushOutcome.CREATED, mapping.sid(created["id"]))

    async def drop_enrollment(self, course_external_id: str, uuid: str) -> PushResult:
        """Conclude each live enrollment; none left means done."""
        existing = await self.client.enrollments_of(course_external_id, uuid)
        for enrollment in existing:
            try:
                await self.client.end_enrollment(course_external_id, enrollment["id"])
            except NotFound:
                continue
        outcome = PushOutcome.UPDATED if existing else PushOutcome.UNCHANGED
        return PushResult(outcome, mapping.sid(existing[0]["id"]) if existing else None)

    async def users(self) -> AsyncIterator[list[ExternalUser]]:
        """accounts/:id/users, every page."""
        async for page in self.client.pages(f"accounts/{self.client.account_id}/users"):
            yield [mapping.external_user(u) for u in page]

    async def courses(self) -> AsyncIterator[list[CourseRecord]]:
        """accounts/:id/courses (available, completed and unpublished), every page."""
        params = [("state[]", "available"), ("state[]", "completed"), ("state[]", "unpublished")]
        async for page in self.client.pages(f"accounts/{self.client.account_id}/courses", params):
            yield [mapping.course_record(c, str(self.client.base)) for c in page]

    async def enrollments(self, course_external_id: str) -> AsyncIterator[list[EnrollmentRecord]]:
        """Student enrollments in every state that matters, every page."""
        params = [
            ("type[]", "StudentEnrollment"),
            ("state[]", "active"),
            ("state[]", "invited"),
            ("state[]", "completed"),
            ("state[]", "inactive"),
        ]
        async for page in self.client.pages(f"courses/{course_external_id}/enrollments", params):
            yield [mapping.enrollment_record(e) for e in page]

    async def milestones(self, course_external_id: str, since: str | None) -> AsyncIterator[list[MilestoneRecord]]:
        """students/submissions for all students, incremental with `submitted_since`."""
        params = [("student_ids[]", "all")]
        if since:
            params.append(("submitted_since", since))
        async for page in self.client.pages(f"courses/{course_external_id}/students/submissions", params):
            yield [m for s in page for m in mapping.milestones(s, course_external_id)]

    async def page_views(self, course_external_id: str, user_external_id: str) -> int | None:
        """Analytics activity of one student; None when analytics are off (404)."""
        try:
            data = await self.client.get(f"courses/{course_external_id}/analytics/users/{user_external_id}/activity")
        except NotFound:
            return None
        return mapping.activity_totals(data)[0]


def build(upstream: Upstream) -> CanvasConnector:
    """A Canvas connector for one provider."""
    client = CanvasClient(
        upstream.http,
        upstream.base_url,
        upstream.credentials.get("access_token", ""),
        account_id=upstream.account_id,
        timeout=upstream.request_timeout_s,
        per_page=upstream.per_page,
    )
    return CanvasConnector(client)
