"""The Kolibri connector: facility users, classrooms and memberships; progress through the CSV export task.

Identity: a learner pushed by the appliance is the Kolibri facility user whose username is
`mapping.kolibri_username(local username)`, and whose `id_number` holds the appliance uuid. A look-up by
username always comes before a create; a Kolibri user with that username but another `id_number` is somebody
else and is never adopted.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import functools
import io
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import IO, Any, ParamSpec

from appliance.connectors.contract import PushOutcome, PushResult, Upstream, UserPush
from appliance.connectors.errors import NotFound, Rejected, Transient
from appliance.connectors.kolibri import mapping
from appliance.connectors.kolibri.client import KolibriClient, classify
from appliance.connectors.kolibri.mapping import BadAnswer
from appliance.connectors.records import ActivityRecord, CourseRecord, EnrollmentRecord, ExternalUser

EXPORT_TASK = "kolibri.core.logger.tasks.exportsummarylogcsv"
TASK_DONE = "COMPLETED"
TASK_FAILED = {"FAILED", "CANCELED", "CANCELING"}
EXPORT_FROM = "2000-01-01"  # Kolibri filters the export on when a log *started*: ask for all of them
SINCE_OVERLAP = timedelta(days=1)  # clocks of the appliance and Kolibri may disagree
MAX_PAGES = 100_000
P = ParamSpec("P")


def refused_when_unusable(
    push: Callable[P, Awaitable[PushResult]],
) -> Callable[P, Awaitable[PushResult]]:
    """A push whose answer is unusable (BadAnswer) is a refused record: it goes to dead letters with the
    reason instead of escaping the pusher's classification (pulls let BadAnswer fail the run)."""

    @functools.wraps(push)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> PushResult:
        try:
            return await push(*args, **kwargs)
        except BadAnswer as exc:
            raise Rejected(502, None, str(exc)) from exc

    return wrapper


def _taken(exc: Rejected) -> bool:
    """Kolibri says the username is in use (a create raced with an earlier one whose answer was lost)."""
    return exc.status == 400 and "USERNAME_ALREADY_EXISTS" in str(exc.body)


class KolibriConnector:
    """Kolibri behind the Connector protocol (plus Capability.ACTIVITY and COURSE_RESOURCES)."""

    def __init__(self, client: KolibriClient, *, per_page: int = 100, export_limit_s: float = 600.0) -> None:
        self.client = client
        self.per_page = max(1, min(per_page, 1000))
        self.export_limit_s = export_limit_s
        self.by_uuid: dict[str, str] = {}  # appliance uuid → Kolibri user id, learned from pushes and scans
        self._export_lock = asyncio.Lock()  # one export at a time: Kolibri keeps one file per facility
        # Ids of live users as of the last complete users() listing: Kolibri keeps listing the memberships of
        # soft-deleted users, which enrollments() leaves out.
        self.live_users: set[str] | None = None

    @property
    def facility(self) -> str:
        """Kolibri's id of the facility (known once signed in)."""
        assert self.client.facility_id is not None
        return self.client.facility_id

    def rate_remaining(self) -> float | None:
        """Kolibri has no rate-limit headers."""
        return None

    async def probe(self, timeout: float) -> None:
        """Reachable within `timeout` (the public info), then signed in: a PUT of the session, which keeps it
        alive, or a sign-in (slower: Kolibri hashes the password), with the ordinary request timeout."""
        status, headers, data = await self.client.send("GET", "/api/public/info/", timeout=timeout)
        failure = classify(status, headers, data)
        if failure is not None:
            raise failure
        await self.client.ensure_session()

    # ---- users -----------------------------------------------------------------------------------
    async def _facility_users(self, *, deleted: bool = False, search: str | None = None) -> AsyncIterator[list[Any]]:
        """Raw facility users page by page (page numbers, bounded by the first page's total_pages)."""
        await self._signed()
        path = "/api/auth/deletedfacilityuser/" if deleted else "/api/auth/facilityuser/"
        params = [("member_of", self.facility), ("ordering", "date_joined"), ("page_size", str(self.per_page))]
        if search:
            params.append(("search", search))
        seen: set[str] = set()
        page, total = 1, 1
        while page <= total:
            body = await self.client.call("GET", path, params=[*params, ("page", str(page))])
            items, pages = mapping.paged(body, "users")
            if pages is None:
                raise BadAnswer("Kolibri ignored page_size and sent every user in one answer")
            if page == 1:
                count = body.get("count") if isinstance(body, dict) else None
                if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                    raise BadAnswer(f"Kolibri sent a page of users whose 'count' is {count!r}")
                if pages > -(-count // self.per_page) + 1 or pages > MAX_PAGES:
                    raise BadAnswer(f"Kolibri claims {pages} pages for {count} users at {self.per_page} a page")
                total = pages
            for item in items:
                uid = mapping.external_user(item).external_id
                if uid in seen:
                    raise BadAnswer(
                        f"Kolibri listed user {uid} twice while paging (the user list changed during the pull;"
                        " the next run reads it again)"
                    )
                seen.add(uid)
            yield items
            page += 1

    async def _signed(self) -> None:
        if self.client.facility_id is None:
            await self.client.sign_in()

    async def find_user(self, username: str, *, deleted: bool = False) -> dict[str, Any] | None:
        """The facility user holding exactly this username (Kolibri compares usernames case-insensitively)."""
        wanted = username.casefold()
        async for page in self._facility_users(deleted=deleted, search=username):
            for item in page:
                if str(item.get("username", "")).casefold() == wanted:
                    return dict(item)
        return None

    async def user_id_of(self, uuid: str) -> str | None:
        """Kolibri's id of the learner the appliance pushed (by `id_number`), from memory or a scan."""
        if uuid not in self.by_uuid:
            async for page in self._facility_users():
                for item in page:
                    if item.get("id_number"):
                        self.by_uuid[str(item["id_number"])] = str(item["id"])
        return self.by_uuid.get(uuid)

    def _adoptable(self, current: dict[str, Any], uuid: str) -> dict[str, Any]:
        owner = str(current.get("id_number") or "")
        if owner and owner != uuid:
            raise Rejected(
                409,
                [{"id": "USERNAME_TAKEN", "metadata": {"field": "username", "message": current.get("username")}}],
                f"the Kolibri username {current.get('username')} belongs to another person (id_number {owner})",
            )
        return current

    @refused_when_unusable
    async def ensure_user(self, user: UserPush, *, create: bool, check_first: bool = True) -> PushResult:
        """Look up by username, restore a soft-deleted one of ours, else create; then converge the name."""
        await self._signed()
        username = mapping.kolibri_username(str(user.payload["username"]))
        current = await self.find_user(username) if check_first or not create else None
        if current is None and (check_first or not create):
            # A learner deactivated here was soft-deleted there: restore that account, never make a second.
            removed = await self.find_user(username, deleted=True)
            if removed is not None and str(removed.get("id_number") or "") == user.uuid:
                removed_id = mapping.external_user(removed).external_id
                self.by_uuid[user.uuid] = removed_id
                if user.deactivated:
                    return PushResult(PushOutcome.UNCHANGED, removed_id, "deleted in Kolibri")
                await self.client.call("POST", "/api/auth/deletedfacilityuser/restore/", params={"by_ids": removed_id})
                return PushResult(PushOutcome.UPDATED, removed_id, "restored in Kolibri")
        if current is None:
            if not create:
                return PushResult(PushOutcome.SKIPPED, detail="not provisioned in Kolibri")
            body = mapping.user_create_body(user.payload, self.facility, secrets.token_urlsafe(24))
            try:
                created = await self.client.call("POST", "/api/auth/facilityuser/", body=body)
            except Rejected as exc:
                found = await self.find_user(username) if _taken(exc) else None
                if found is None:
                    raise
                current = found
            else:
                external = mapping.external_user(created).external_id
                self.by_uuid[user.uuid] = external
                if user.deactivated:
                    await self.client.call("DELETE", f"/api/auth/facilityuser/{external}/")
                return PushResult(PushOutcome.CREATED, external)
        current = self._adoptable(current, user.uuid)
        external = mapping.external_user(current).external_id
        self.by_uuid[user.uuid] = external
        patch: dict[str, Any] = {}
        if mapping.user_needs_update(current, user.payload):
            patch["full_name"] = mapping.full_name(user.payload)
        if not current.get("id_number"):
            patch["id_number"] = user.uuid  # a Kolibri learner matched by username becomes ours
        if patch:
            await self.client.call("PATCH", f"/api/auth/facilityuser/{external}/", body=patch)
            return PushResult(PushOutcome.UPDATED, external)
        return PushResult(PushOutcome.UNCHANGED, external)

    @refused_when_unusable
    async def deactivate_user(self, uuid: str) -> PushResult:
        """Delete the Kolibri user: Kolibri 0.19 only soft-deletes (restorable for 30 days, progress kept)."""
        await self._signed()
        external = await self.user_id_of(uuid)
        if external is None:
            return PushResult(PushOutcome.SKIPPED, detail="absent from Kolibri")
        try:
            await self.client.call("DELETE", f"/api/auth/facilityuser/{external}/")
        except NotFound:
            return PushResult(PushOutcome.UNCHANGED, external, "already deleted in Kolibri")
        return PushResult(PushOutcome.UPDATED, external)

    # ---- memberships -----------------------------------------------------------------------------
    async def _memberships(self, classroom: str, user: str | None = None) -> list[dict[str, Any]]:
        params = [("collection", classroom)]
        if user:
            params.append(("user", user))
        items, _ = mapping.paged(await self.client.call("GET", "/api/auth/membership/", params=params), "memberships")
        for item in items:
            mapping.enrollment_record(item, classroom)  # validates the shape
        return [dict(i) for i in items]

    @refused_when_unusable
    async def ensure_enrollment(self, course_external_id: str, uuid: str) -> PushResult:
        """A classroom membership, unless the learner already has one."""
        await self._signed()
        user = await self.user_id_of(uuid)
        if user is None:
            raise Rejected(422, [{"id": "NOT_FOUND", "metadata": {"field": "user"}}], "learner is not in Kolibri")
        existing = await self._memberships(course_external_id, user)
        if existing:
            return PushResult(PushOutcome.UNCHANGED, str(existing[0]["id"]))
        try:
            created = await self.client.call(
                "POST", "/api/auth/membership/", body={"user": user, "collection": course_external_id}
            )
        except Transient:
            # Kolibri answers a duplicate membership with a bare 500 (an integrity error), which looks like an
            # outage: when the membership is there after all, it is done.
            existing = await self._memberships(course_external_id, user)
            if not existing:
                raise
            return PushResult(PushOutcome.UNCHANGED, str(existing[0]["id"]))
        return PushResult(PushOutcome.CREATED, mapping.enrollment_record(created, course_external_id).external_id)

    @refused_when_unusable
    async def drop_enrollment(self, course_external_id: str, uuid: str) -> PushResult:
        """Delete the learner's memberships of the classroom; none left means done."""
        await self._signed()
        user = await self.user_id_of(uuid)
        if user is None:
            return PushResult(PushOutcome.UNCHANGED, detail="absent from Kolibri")
        existing = await self._memberships(course_external_id, user)
        for membership in existing:
            try:
                await self.client.call("DELETE", f"/api/auth/membership/{membership['id']}/")
            except NotFound:
                continue
        outcome = PushOutcome.UPDATED if existing else PushOutcome.UNCHANGED
        return PushResult(outcome, str(existing[0]["id"]) if existing else None)

    # ---- pulls -----------------------------------------------------------------------------------
    async def users(self) -> AsyncIterator[list[ExternalUser]]:
        """Every user of the facility, page by page."""
        live: set[str] = set()
        async for page in self._facility_users():
            users = [mapping.external_user(u) for u in page]
            for user in users:
                live.add(user.external_id)
                if user.sis_id:
                    self.by_uuid[user.sis_id] = user.external_id
            yield users
        self.live_users = live

    async def courses(self) -> AsyncIterator[list[CourseRecord]]:
        """The facility's classrooms (Kolibri sends them in one list)."""
        await self._signed()
        items, _ = mapping.paged(
            await self.client.call("GET", "/api/auth/classroom/", params={"parent": self.facility}), "classrooms"
        )
        records = [mapping.course_record(c, str(self.client.base)) for c in items]
        for start in range(0, len(records), self.per_page):
            yield records[start : start + self.per_page]

    async def enrollments(self, course_external_id: str) -> AsyncIterator[list[EnrollmentRecord]]:
        """Learner memberships of one classroom."""
        await self._signed()
        memberships = await self._memberships(course_external_id)
        records = [mapping.enrollment_record(m, course_external_id) for m in memberships]
        if self.live_users is not None:
            records = [r for r in records if r.user_external_id in self.live_users]
        for start in range(0, len(records), self.per_page):
            yield records[start : start + self.per_page]

    async def course_resources(self, course_external_id: str) -> set[str]:
        """The resources of the classroom's active lessons (Kolibri sends a classroom's lessons in one list)."""
        await self._signed()
        body = await self.client.call("GET", "/api/lessons/lesson/", params={"collection": course_external_id})
        items, _ = mapping.paged(body, "lessons")
        resources: set[str] = set()
        for lesson in items:
            resources |= mapping.lesson_resources(lesson, course_external_id)
        return resources

    async def activity(self, since: str | None) -> AsyncIterator[list[ActivityRecord]]:
        """Time spent and progress per learner and resource, from the summary-log CSV export.

        The export covers every log of the facility (Kolibri filters it on when a log started, which says
        nothing about recent progress); rows whose last interaction predates `since` (less a day) are left out.
        """
        await self._signed()
        user_ids: dict[str, str] = {}
        async for page in self._facility_users():
            for item in page:
                user = mapping.external_user(item)
                user_ids[(user.login_id or "").casefold()] = user.external_id
        cutoff = _cutoff(since)
        async with self._export_lock:
            spool = await self.export_summary_logs()
        try:
            batch: list[ActivityRecord] = []
            for row in mapping.csv_rows(csv.reader(_text_lines(spool))):
                record = mapping.activity_record(row, user_ids)
                if record is None or (cutoff and record.occurred_at and record.occurred_at < cutoff):
                    continue
                batch.append(record)
                if len(batch) >= self.per_page:
                    yield batch
                    batch = []
                    await asyncio.sleep(0)
            if batch:
                yield batch
        except (csv.Error, UnicodeDecodeError) as exc:
            raise BadAnswer(f"Kolibri's summary-log export is not readable CSV: {exc}") from None
        finally:
            spool.close()

    async def export_summary_logs(self) -> IO[bytes]:
        """Start Kolibri's export task, wait for it, and download the CSV it wrote."""
        end = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
        job = await self.client.call(
            "POST",
            "/api/tasks/tasks/",
            body={"type": EXPORT_TASK, "facility": self.facility, "start_date": EXPORT_FROM, "end_date": end,
                  "locale": "en"},
        )
        job_id = _job_field(job, "id")
        wait, waited = 0.1, 0.0
        status = _job_field(job, "status")
        while status != TASK_DONE:
            if status in TASK_FAILED:
                raise Rejected(
                    500, job, f"Kolibri's log export {job_id} ended {status}: {str(job.get('exception'))[:300]}"
                )
            if waited > self.export_limit_s:
                raise Transient(f"Kolibri's log export {job_id} still {status} after {self.export_limit_s:.0f}s")
            await asyncio.sleep(wait)
            waited += wait
            wait = min(wait * 2, 2.0)
            job = await self.client.call("GET", f"/api/tasks/tasks/{job_id}/")
            status = _job_field(job, "status")
        with contextlib.suppress(Rejected, BadAnswer):  # a finished job left in Kolibri's list is harmless
            await self.client.call("POST", f"/api/tasks/tasks/{job_id}/clear/", body={})
        return await self.client.download(f"/facility/api/downloadcsvfile/summary/{self.facility}/")


def _job_field(job: Any, key: str) -> str:
    if not isinstance(job, dict) or not isinstance(job.get(key), str):
        raise BadAnswer(f"Kolibri's task answer has no {key}: {str(job)[:120]!r}")
    return str(job[key])


def _cutoff(since: str | None) -> str | None:
    if not since:
        return None
    try:
        moment = datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment - SINCE_OVERLAP).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _text_lines(spool: IO[bytes]) -> io.TextIOWrapper:
    """The spooled CSV as text (the BOM is dropped by utf-8-sig)."""
    return io.TextIOWrapper(spool, encoding="utf-8-sig", newline="")


def build(upstream: Upstream) -> KolibriConnector:
    """A Kolibri connector for one provider."""
    client = KolibriClient(
        upstream.http,
        upstream.base_url,
        upstream.credentials.get("username", ""),
        upstream.credentials.get("password", ""),
        facility=upstream.credentials.get("facility") or None,
        timeout=upstream.request_timeout_s,
    )
    return KolibriConnector(client, per_page=upstream.per_page)
