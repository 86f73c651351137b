"""What every connector offers the sync engine: a probe, idempotent pushes and paged pulls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from appliance.connectors.canvas.mapping import CourseRecord, EnrollmentRecord, ExternalUser, MilestoneRecord


class PushOutcome(Enum):
    """What a push did upstream."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"  # already there as wanted (a redelivery after a crash lands here)
    SKIPPED = "skipped"  # nothing to do for this provider


@dataclass(frozen=True)
class PushResult:
    """Outcome plus the upstream id of the object, when there is one."""

    outcome: PushOutcome
    external_id: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class UserPush:
    """Current local state of a user to converge upstream."""

    uuid: str
    payload: dict[str, Any]
    deactivated: bool


class Connector(Protocol):
    """One upstream LMS account."""

    def rate_remaining(self) -> float | None:
        """What is left of the upstream's rate-limit budget, if it says."""

    async def probe(self, timeout: float) -> None:
        """Cheap reachability + credentials check; raises a classified UpstreamError."""

    async def ensure_user(self, user: UserPush, *, create: bool, check_first: bool = True) -> PushResult:
        """Make the upstream user match: look up by SIS id = uuid before creating, unless the record was
        never attempted (check_first=False), where a create goes first and a "taken" conflict is adopted."""

    async def import_users(self, users: list[UserPush], *, poll_limit_s: float = 600.0) -> bool:
        """Batch path for many new learners (Canvas SIS import); True when all were imported cleanly."""

    async def deactivate_user(self, uuid: str) -> PushResult:
        """Suspend the upstream user, if it exists."""

    async def ensure_enrollment(self, course_external_id: str, uuid: str) -> PushResult:
        """Enroll the user as a student unless already enrolled."""

    async def drop_enrollment(self, course_external_id: str, uuid: str) -> PushResult:
        """End every live student enrollment of the user in the course."""

    def users(self) -> AsyncIterator[list[ExternalUser]]:
        """Every upstream user, page by page."""

    def courses(self) -> AsyncIterator[list[CourseRecord]]:
        """Every upstream course, page by page."""

    def enrollments(self, course_external_id: str) -> AsyncIterator[list[EnrollmentRecord]]:
        """Student enrollments of one course, page by page."""

    def milestones(self, course_external_id: str, since: str | None) -> AsyncIterator[list[MilestoneRecord]]:
        """Submissions and grades of one course since a cursor, page by page."""

    async def page_views(self, course_external_id: str, user_external_id: str) -> int | None:
        """Page views of one student in one course (None where analytics are unavailable)."""
