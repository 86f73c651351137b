"""The Moodle connector: idempotent pushes keyed by idnumber = appliance uuid, and paged pulls.

Moodle's web services have no "every user" list with paging, so users are read course by course through
`core_enrol_get_enrolled_users` (`limitfrom`/`limitnumber`) and de-duplicated; a site user enrolled in no
course is not pulled (nothing would hang off it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from appliance.connectors.contract import PushOutcome, PushResult, Upstream, UserPush
from appliance.connectors.errors import Malformed, NotPermitted, Rejected
from appliance.connectors.moodle import mapping
from appliance.connectors.moodle.client import MoodleClient
from appliance.connectors.payload import PageGuard, opt_int, text_id
from appliance.connectors.records import CourseRecord, EnrollmentRecord, ExternalUser, MilestoneRecord

USER_FIELDS = "id,username,firstname,lastname,fullname,email,idnumber,suspended,roles"
PER_USER_CONCURRENCY = 8  # completions are per learner: several at once, not a page at once


class MoodleConnector:
    """Moodle behind the Connector protocol."""

    def __init__(self, client: MoodleClient, per_page: int = 100) -> None:
        self.client = client
        self.per_page = per_page
        self.completion_enabled: dict[str, bool] = {}

    def rate_remaining(self) -> float | None:
        """Moodle publishes no rate-limit budget."""
        return None

    async def probe(self, timeout: float) -> None:
        """core_webservice_get_site_info: answers only with a valid token."""
        await self.client.call("core_webservice_get_site_info", timeout=timeout)

    # ---- users -----------------------------------------------------------------------------------
    async def find_user(self, uuid: str) -> dict[str, Any] | None:
        """The Moodle user whose idnumber is this uuid (the oldest, should an admin have copied it)."""
        found = await self.client.call_list(
            "core_user_get_users_by_field", {"field": "idnumber", "values": [uuid]}
        )
        matches = [u for u in found if isinstance(u, dict) and str(u.get("idnumber")) == uuid]
        if not matches:
            return None
        return min(matches, key=lambda u: opt_int(u.get("id")) or 0)

    async def create_user(self, user: UserPush) -> str:
        """core_user_create_users; returns the new id."""
        created = await self.client.call_list(
            "core_user_create_users", {"users": [mapping.user_create(user.payload, user.deactivated)]}
        )
        if not created:
            raise Malformed("Moodle core_user_create_users returned no user")
        return text_id(created[0], "id", "Moodle created user")

    async def ensure_user(self, user: UserPush, *, create: bool, check_first: bool = True) -> PushResult:
        """Create the user unless its idnumber exists; otherwise converge names, email and suspension."""
        current = await self.find_user(user.uuid) if check_first or not create else None
        if current is None:
            if not create:
                return PushResult(PushOutcome.SKIPPED, detail="not provisioned upstream")
            try:
                return PushResult(PushOutcome.CREATED, await self.create_user(user))
            except Rejected as exc:
                # Outside debug mode Moodle says only "Invalid parameter value detected", never which one:
                # look the uuid up once; a user holding it is an earlier create whose answer was lost.
                found = None if isinstance(exc, NotPermitted) else await self.find_user(user.uuid)
                if found is None:
                    raise
                current = found
        external_id = text_id(current, "id", "Moodle user")
        changes = mapping.user_changes(current, user.payload, user.deactivated)
        if not changes:
            return PushResult(PushOutcome.UNCHANGED, external_id)
        await self.client.call("core_user_update_users", {"users": [{"id": external_id, **changes}]})
        return PushResult(PushOutcome.UPDATED, external_id)

    async def deactivate_user(self, uuid: str) -> PushResult:
        """Suspend the Moodle account; absent upstream means nothing to do."""
        current = await self.find_user(uuid)
        if current is None:
            return PushResult(PushOutcome.SKIPPED, detail="absent upstream")
        external_id = text_id(current, "id", "Moodle user")
        if opt_int(current.get("suspended")):
            return PushResult(PushOutcome.UNCHANGED, external_id)
        await self.client.call("core_user_update_users", {"users": [{"id": external_id, "suspended": 1}]})
        return PushResult(PushOutcome.UPDATED, external_id)

    # ---- enrolments ------------------------------------------------------------------------------
    async def _enrolled_in(self, user_id: str, course_external_id: str) -> bool:
        courses = await self.client.call_list("core_enrol_get_users_courses", {"userid": user_id})
        return any(isinstance(c, dict) and str(c.get("id")) == course_external_id for c in courses)

    async def ensure_enrollment(self, course_external_id: str, uuid: str) -> PushResult:
        """Enrol as a student through the manual enrolment plugin unless already enrolled."""
        current = await self.find_user(uuid)
        if current is None:
            raise Rejected(422, {"message": "learner not found in Moodle"}, "learner not found in Moodle")
        user_id = text_id(current, "id", "Moodle user")
        external_id = f"{course_external_id}:{user_id}"
        if await self._enrolled_in(user_id, course_external_id):
            return PushResult(PushOutcome.UNCHANGED, external_id)
        enrolment = {"roleid": mapping.STUDENT_ROLE_ID, "userid": user_id, "courseid": course_external_id}
        await self.client.call("enrol_manual_enrol_users", {"enrolments": [enrolment]})
        return PushResult(PushOutcome.CREATED, external_id)

    async def drop_enrollment(self, course_external_id: str, uuid: str) -> PushResult:
        """Unenrol from the manual enrolment plugin; not enrolled means done."""
        current = await self.find_user(uuid)
        if current is None:
            return PushResult(PushOutcome.UNCHANGED, None)
        user_id = text_id(current, "id", "Moodle user")
        if not await self._enrolled_in(user_id, course_external_id):
            return PushResult(PushOutcome.UNCHANGED, None)
        await self.client.call(
            "enrol_manual_unenrol_users", {"enrolments": [{"userid": user_id, "courseid": course_external_id}]}
        )
        return PushResult(PushOutcome.UPDATED, f"{course_external_id}:{user_id}")

    # ---- pulls -----------------------------------------------------------------------------------
    async def _course_list(self) -> list[dict[str, Any]]:
        courses = await self.client.call_list("core_course_get_courses")
        real = []
        for course in courses:
            course_id = text_id(course, "id", "Moodle course")
            if mapping.is_site_course(course):
                continue
            self.completion_enabled[course_id] = opt_int(course.get("enablecompletion")) != 0
            real.append(course)
        return real

    async def enrolled(self, course_external_id: str) -> AsyncIterator[list[dict[str, Any]]]:
        """Enrolled users of one course, page by page (limitfrom/limitnumber), refusing a page that repeats."""
        guard = PageGuard(f"Moodle enrolled users of course {course_external_id}")
        offset = 0
        while True:
            options = [
                {"name": "limitfrom", "value": offset},
                {"name": "limitnumber", "value": self.per_page},
                {"name": "userfields", "value": USER_FIELDS},
            ]
            page = await self.client.call_list(
                "core_enrol_get_enrolled_users", {"courseid": course_external_id, "options": options}
            )
            if not page:
                return
            ids = [text_id(u, "id", "Moodle enrolled user") for u in page]
            # A server that ignores limitfrom sends the same page forever.
            guard.visit(",".join(ids))
            yield page
            if len(page) < self.per_page:
                return
            offset += self.per_page  # what the server was asked to skip, whatever it sent

    async def users(self) -> AsyncIterator[list[ExternalUser]]:
        """Users enrolled in any course, each once."""
        seen: set[str] = set()
        for course in await self._course_list():
            async for page in self.enrolled(text_id(course, "id", "Moodle course")):
                fresh = []
                for user in page:
                    record = mapping.external_user(user)
                    if record.external_id not in seen:
                        seen.add(record.external_id)
                        fresh.append(record)
                if fresh:
                    yield fresh

    async def courses(self) -> AsyncIterator[list[CourseRecord]]:
        """core_course_get_courses without the site course (one answer: Moodle does not page it)."""
        yield [mapping.course_record(c, str(self.client.base)) for c in await self._course_list()]

    async def enrollments(self, course_external_id: str) -> AsyncIterator[list[EnrollmentRecord]]:
        """Students enrolled in one course, page by page."""
        async for page in self.enrolled(course_external_id):
            yield [mapping.enrollment_record(u, course_external_id) for u in page if mapping.is_student(u)]

    async def milestones(self, course_external_id: str, since: str | None) -> AsyncIterator[list[MilestoneRecord]]:
        """Grades of the course and activity completions of each student since the cursor.

        Grades come in one call for the whole course when the answer fits under the body cap, else per
        learner; completions exist only per learner in Moodle's web services.
        """
        floor = mapping.since_seconds(since)
        tracked = self.completion_enabled.get(course_external_id, True)
        gate = asyncio.Semaphore(PER_USER_CONCURRENCY)
        course_grades: list[MilestoneRecord] | None = None
        try:
            whole = await self.client.call_dict("gradereport_user_get_grade_items", {"courseid": course_external_id})
            course_grades = mapping.grade_milestones(whole, course_external_id, floor)
        except Malformed as exc:
            if "limit" not in str(exc):
                raise  # a wrong shape is wrong per learner too; only a big course is read learner by learner

        async def one(user_id: str) -> list[MilestoneRecord]:
            async with gate:
                records: list[MilestoneRecord] = []
                if tracked:
                    status = await self.client.call_dict(
                        "core_completion_get_activities_completion_status",
                        {"courseid": course_external_id, "userid": user_id},
                    )
                    records += mapping.completion_milestones(status, course_external_id, user_id, floor)
                if course_grades is None:
                    grades = await self.client.call_dict(
                        "gradereport_user_get_grade_items", {"courseid": course_external_id, "userid": user_id}
                    )
                    records += mapping.grade_milestones(grades, course_external_id, floor)
                return records

        if course_grades:
            yield course_grades
        if not tracked and course_grades is not None:
            return
        async for page in self.enrolled(course_external_id):
            students = [text_id(u, "id", "Moodle enrolled user") for u in page if mapping.is_student(u)]
            try:
                async with asyncio.TaskGroup() as group:
                    tasks = [group.create_task(one(uid)) for uid in students]
            except ExceptionGroup as failures:  # the engine classifies one failure, not a group
                raise failures.exceptions[0] from None
            yield [m for task in tasks for m in task.result()]


def build(upstream: Upstream) -> MoodleConnector:
    """A Moodle connector for one provider."""
    client = MoodleClient(
        upstream.http, upstream.base_url, upstream.credentials.get("token", ""), timeout=upstream.request_timeout_s
    )
    return MoodleConnector(client, per_page=upstream.per_page)
