"""The Brightspace connector: idempotent pushes keyed by OrgDefinedId = appliance uuid, and paged pulls."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from appliance.connectors.brightspace import mapping
from appliance.connectors.brightspace.client import BrightspaceClient
from appliance.connectors.brightspace.oauth import IdKeyAuth, OAuthAuth
from appliance.connectors.contract import PushOutcome, PushResult, Upstream, UserPush
from appliance.connectors.errors import NotFound, Rejected
from appliance.connectors.records import CourseRecord, EnrollmentRecord, ExternalUser, MilestoneRecord

log = logging.getLogger(__name__)


class BrightspaceConnector:
    """Brightspace behind the Connector protocol (plus grades as milestones)."""

    def __init__(self, client: BrightspaceClient) -> None:
        self.client = client

    def rate_remaining(self) -> float | None:
        """Brightspace's last X-Rate-Limit-Remaining (credits)."""
        return self.client.remaining

    async def probe(self, timeout: float) -> None:
        """Versions and whoami with a short timeout."""
        await self.client.probe(timeout)

    # ---- users -------------------------------------------------------------------------------------
    async def user_by_uuid(self, uuid: str) -> dict[str, Any] | None:
        """The upstream user whose OrgDefinedId is this uuid (GET users/?orgDefinedId= answers a list)."""
        await self.client.discover()
        try:
            found = await self.client.call("GET", self.client.lp("users/"), params={"orgDefinedId": uuid})
        except NotFound:
            return None
        if isinstance(found, dict):
            found = [found]
        if not isinstance(found, list):
            raise mapping.BadAnswer("users?orgDefinedId= is not a list")
        matches = [mapping.obj(u, "user") for u in found if isinstance(u, dict) and u.get("OrgDefinedId") == uuid]
        return matches[0] if matches else None

    async def ensure_user(self, user: UserPush, *, create: bool, check_first: bool = True) -> PushResult:
        """Create the user unless its OrgDefinedId exists; otherwise update names, email and activation."""
        current = await self.user_by_uuid(user.uuid) if check_first or not create else None
        active = not user.deactivated
        if current is None:
            if not create:
                return PushResult(PushOutcome.SKIPPED, detail="not provisioned upstream")
            role = await self.client.learner_role_id()
            body = mapping.user_create_body(user.payload, role, active=active)
            try:
                created = await self.client.call("POST", self.client.lp("users/"), body=body)
            except Rejected as exc:
                # An earlier attempt whose answer was lost may have created it: adopt instead of failing.
                found = await self.user_by_uuid(user.uuid) if exc.status in (400, 409) else None
                if found is None:
                    raise
                current = found
            else:
                return PushResult(PushOutcome.CREATED, mapping.ident(mapping.obj(created, "user").get("UserId"),
                                                                     "user.UserId"))
        external_id = mapping.ident(current.get("UserId"), "user.UserId")
        if mapping.user_needs_update(current, user.payload, active=active):
            await self.client.call("PUT", self.client.lp(f"users/{quote(external_id)}"),
                                   body=mapping.user_update_body(user.payload, active=active))
            return PushResult(PushOutcome.UPDATED, external_id)
        return PushResult(PushOutcome.UNCHANGED, external_id)

    async def deactivate_user(self, uuid: str) -> PushResult:
        """Turn the user's activation off; absent upstream means nothing to do."""
        current = await self.user_by_uuid(uuid)
        if current is None:
            return PushResult(PushOutcome.SKIPPED, detail="absent upstream")
        external_id = mapping.ident(current.get("UserId"), "user.UserId")
        if not mapping.is_active(current):
            return PushResult(PushOutcome.UNCHANGED, external_id)
        await self.client.call("PUT", self.client.lp(f"users/{quote(external_id)}/activation"),
                               body={"IsActive": False})
        return PushResult(PushOutcome.UPDATED, external_id)

    # ---- enrollments -------------------------------------------------------------------------------
    async def _enrollment(self, org_unit: str, user_id: str) -> dict[str, Any] | None:
        try:
            found = await self.client.call(
                "GET", self.client.lp(f"enrollments/orgUnits/{quote(org_unit)}/users/{quote(user_id)}")
            )
        except NotFound:
            return None
        return mapping.obj(found, "enrollment")

    async def ensure_enrollment(self, course_external_id: str, uuid: str) -> PushResult:
        """Enroll as a learner unless an enrollment exists (looked up first, so a redelivery is harmless)."""
        user = await self.user_by_uuid(uuid)
        if user is None:
            raise NotFound(404, {"error": "user not in Brightspace"}, f"no Brightspace user with OrgDefinedId {uuid}")
        user_id = mapping.ident(user.get("UserId"), "user.UserId")
        external_id = f"{course_external_id}:{user_id}"
        if await self._enrollment(course_external_id, user_id) is not None:
            return PushResult(PushOutcome.UNCHANGED, external_id)
        role = await self.client.learner_role_id()
        body = {"OrgUnitId": _num(course_external_id), "UserId": _num(user_id), "RoleId": _num(role)}
        await self.client.call("POST", self.client.lp("enrollments/"), body=body)
        return PushResult(PushOutcome.CREATED, external_id)

    async def drop_enrollment(self, course_external_id: str, uuid: str) -> PushResult:
        """Delete the enrollment if there is one."""
        user = await self.user_by_uuid(uuid)
        if user is None:
            return PushResult(PushOutcome.UNCHANGED)
        user_id = mapping.ident(user.get("UserId"), "user.UserId")
        external_id = f"{course_external_id}:{user_id}"
        if await self._enrollment(course_external_id, user_id) is None:
            return PushResult(PushOutcome.UNCHANGED, external_id)
        try:
            await self.client.call(
                "DELETE", self.client.lp(f"enrollments/orgUnits/{quote(course_external_id)}/users/{quote(user_id)}")
            )
        except NotFound:
            return PushResult(PushOutcome.UNCHANGED, external_id)
        return PushResult(PushOutcome.UPDATED, external_id)

    # ---- pulls -------------------------------------------------------------------------------------
    async def users(self) -> AsyncIterator[list[ExternalUser]]:
        """Every user (PagedResultSet by bookmark); a user repeated on a later page is read once."""
        await self.client.discover()
        seen: set[str] = set()
        async for page in self.client.paged(self.client.lp("users/"), what="users"):
            out = []
            for raw in page:
                user = mapping.external_user(raw)
                if user.external_id not in seen:
                    seen.add(user.external_id)
                    out.append(user)
            yield out

    async def courses(self) -> AsyncIterator[list[CourseRecord]]:
        """Course offerings below the root org unit (PagedResultSet)."""
        await self.client.discover()
        path = self.client.lp(f"orgstructure/{quote(str(self.client.root_org_unit))}/descendants/paged/")
        seen: set[str] = set()
        async for page in self.client.paged(path, [("ouTypeId", str(mapping.COURSE_OFFERING_TYPE))], "courses"):
            out = []
            for raw in page:
                course = mapping.course_record(raw, str(self.client.base))
                if course.external_id not in seen:
                    seen.add(course.external_id)
                    out.append(course)
            yield out

    async def enrollments(self, course_external_id: str) -> AsyncIterator[list[EnrollmentRecord]]:
        """Learners of one org unit (PagedResultSet, filtered to the Learner role)."""
        role = await self.client.learner_role_id()
        path = self.client.lp(f"enrollments/orgUnits/{quote(course_external_id)}/users/")
        seen: set[str] = set()
        async for page in self.client.paged(path, [("roleId", role)], "enrollments"):
            out = []
            for raw in page:
                if mapping.role_of(raw) not in (None, role):
                    continue
                record = mapping.enrollment_record(raw, course_external_id)
                if record.external_id not in seen:
                    seen.add(record.external_id)
                    out.append(record)
            yield out

    async def milestones(self, course_external_id: str, since: str | None) -> AsyncIterator[list[MilestoneRecord]]:
        """Grades of every grade object (ObjectListPage per object), changed since the cursor."""
        await self.client.discover()
        ou = quote(course_external_id)
        grade_ids = mapping.grade_object_ids(await self.client.call("GET", self.client.le(f"{ou}/grades/")))
        for grade_id in grade_ids:
            path = self.client.le(f"{ou}/grades/{quote(grade_id)}/values/")
            params = [("pageSize", str(self.client.page_size)), ("isGraded", "true")]
            async for page in self.client.listed(path, params, "grade values"):
                out = []
                for raw in page:
                    record = mapping.grade_milestone(raw, course_external_id, grade_id)
                    if record is not None and (not since or not record.occurred_at or record.occurred_at >= since):
                        out.append(record)
                yield out


def _num(value: str) -> int | str:
    """Brightspace takes D2LIDs as JSON numbers in write bodies."""
    return int(value) if value.isdigit() else value


def build(upstream: Upstream) -> BrightspaceConnector:
    """A Brightspace connector for one provider (ID-key or OAuth 2.0, by the credentials' keys)."""
    creds = upstream.credentials
    auth: IdKeyAuth | OAuthAuth
    if "refresh_token" in creds:
        auth = OAuthAuth(creds, upstream.http, upstream.save_credentials, timeout=upstream.request_timeout_s)
    else:
        auth = IdKeyAuth(creds)
    client = BrightspaceClient(
        upstream.http,
        upstream.base_url,
        auth,
        root_org_unit=creds.get("org_unit_id") or None,
        timeout=upstream.request_timeout_s,
        page_size=upstream.per_page,
    )
    return BrightspaceConnector(client)
