"""The connector contract: what every connector offers the sync engine, and what some add.

Required of every connector: a probe, idempotent pushes of a user and an enrollment, and paged pulls of
users, courses and enrollments. Everything else is an optional capability a connector type declares
(`Capability`) and the engine asks for before using it, so a connector never has to pretend to have
Canvas's SIS import or analytics.

Rules every connector follows (the egress policy enforces the first; the others are the connector's part):
- Use only `Upstream.http`: it connects through the daemon's egress policy (`egress.allowed_networks`,
  checked on the resolved address at connect time) and refuses cross-origin redirects that carry credentials.
  Never build another aiohttp session.
- Follow a pagination link (Link rel="next", a "next" URL in a body) only through `follow_link`, which
  accepts only the provider's own origin (scheme, host and port of `Upstream.base_url`) and raises
  `ForeignLink` otherwise: a link elsewhere would receive the provider's token.
- Request with `allow_redirects=False` where a redirect has no business (API calls), and never echo upstream
  error bodies into messages an admin sees verbatim; classify them (connectors/errors.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

from yarl import URL

from appliance.connectors.errors import ForeignLink
from appliance.connectors.records import (
    ActivityRecord,
    CourseRecord,
    EnrollmentRecord,
    ExternalUser,
    MilestoneRecord,
)

if TYPE_CHECKING:
    import aiohttp


def follow_link(base_url: str | URL, link: str) -> URL:
    """The absolute URL of a pagination link, if it stays on the provider's own origin; ForeignLink otherwise.

    Relative links are resolved against the base URL. The origin compared is scheme, host and port, so an
    http:// link from an https:// provider is refused too (the token would cross the wire in clear).
    """
    base = base_url if isinstance(base_url, URL) else URL(base_url)
    try:
        target = base.join(URL(link, encoded=True))
        same = target.is_absolute() and target.origin() == base.origin()
    except ValueError:
        same = False
    if not same:
        raise ForeignLink("a pagination link points away from the provider's origin; not followed")
    return target


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


class Capability(Enum):
    """Optional abilities a connector type declares beyond the required contract."""

    BATCH_USER_IMPORT = "batch_user_import"  # many new users in one upstream job (Canvas SIS import)
    BATCH_ENROLLMENT_IMPORT = "batch_enrollment_import"  # many new enrollments in one upstream job (ditto)
    MILESTONES = "milestones"  # submissions, completions and grades since a cursor
    ANALYTICS = "analytics"  # page views per learner and course
    ACTIVITY = "activity"  # time spent and progress per learner, pulled as ActivityRecord pages
    COURSE_RESOURCES = "course_resources"  # the resources a course assigns, to count ACTIVITY per course


class Connector(Protocol):
    """One upstream LMS account: the part every connector must offer."""

    def rate_remaining(self) -> float | None:
        """What is left of the upstream's rate-limit budget, if it says."""

    async def probe(self, timeout: float) -> None:
        """Cheap reachability + credentials check; raises a classified UpstreamError."""

    async def ensure_user(self, user: UserPush, *, create: bool, check_first: bool = True) -> PushResult:
        """Make the upstream user match: look it up by the appliance's uuid before creating, unless the record
        was never attempted (check_first=False), where a create goes first and a "taken" conflict is adopted."""

    async def deactivate_user(self, uuid: str) -> PushResult:
        """Suspend or deactivate the upstream user, if it exists."""

    async def ensure_enrollment(self, course_external_id: str, uuid: str) -> PushResult:
        """Enroll the user as a learner unless already enrolled."""

    async def drop_enrollment(self, course_external_id: str, uuid: str) -> PushResult:
        """End every live learner enrollment of the user in the course."""

    def users(self) -> AsyncIterator[list[ExternalUser]]:
        """Every upstream user, page by page."""

    def courses(self) -> AsyncIterator[list[CourseRecord]]:
        """Every upstream course, page by page."""

    def enrollments(self, course_external_id: str) -> AsyncIterator[list[EnrollmentRecord]]:
        """Learner enrollments of one course, page by page."""


class BatchUserImport(Protocol):
    """Capability.BATCH_USER_IMPORT."""

    async def import_users(self, users: list[UserPush], *, poll_limit_s: float = 600.0) -> bool:
        """Many new learners in one upstream job; True when all were imported cleanly."""


class BatchEnrollmentImport(Protocol):
    """Capability.BATCH_ENROLLMENT_IMPORT."""

    async def import_enrollments(
        self, enrollments: list[tuple[str, str]], *, poll_limit_s: float = 600.0
    ) -> set[tuple[str, str]]:
        """Many new learner enrollments, (course external id, user uuid), in one upstream job; returns those
        imported cleanly (the caller pushes the rest one by one, looking before creating)."""


class Milestones(Protocol):
    """Capability.MILESTONES."""

    def milestones(self, course_external_id: str, since: str | None) -> AsyncIterator[list[MilestoneRecord]]:
        """Submissions, completions and grades of one course since a cursor, page by page."""


class Analytics(Protocol):
    """Capability.ANALYTICS."""

    async def page_views(self, course_external_id: str, user_external_id: str) -> int | None:
        """Page views of one learner in one course (None where the upstream has none)."""


class Activity(Protocol):
    """Capability.ACTIVITY."""

    def activity(self, since: str | None) -> AsyncIterator[list[ActivityRecord]]:
        """Time spent and progress since a cursor, page by page."""


class CourseResources(Protocol):
    """Capability.COURSE_RESOURCES (with ACTIVITY): which resources count towards a course."""

    async def course_resources(self, course_external_id: str) -> set[str]:
        """Ids (as in ActivityRecord.external_id) of the resources the course currently assigns its learners."""


@dataclass(frozen=True)
class Upstream:
    """What a connector is built from: one provider's address and credentials, and the daemon's means.

    Neutral on purpose: connectors do not import the sync feature's provider model.
    """

    provider_id: int
    provider_type: str
    base_url: str
    account_id: str
    credentials: Mapping[str, str]
    http: aiohttp.ClientSession
    request_timeout_s: float = 30.0
    per_page: int = 100
    # Stores rotated credentials (an OAuth refresh token) atomically before the connector relies on them.
    save_credentials: Callable[[dict[str, str]], Awaitable[None]] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


class CredentialsInvalid(ValueError):
    """The credentials object does not fit the connector type; the message is shown to the admin."""


@dataclass(frozen=True)
class ConnectorType:
    """One family of upstreams, registered under the `appliance.connectors` entry-point group.

    `build` is a "module:function" reference taking an `Upstream` and returning a `Connector`, imported only
    when a provider of this type starts, so that listing connector types stays cheap.
    """

    name: str
    provider_types: tuple[str, ...]
    build: str
    check_credentials: Callable[[Mapping[str, Any]], dict[str, str]]
    capabilities: frozenset[Capability] = frozenset()
    description: str = ""

    def has(self, capability: Capability) -> bool:
        """Whether connectors of this type offer an optional capability."""
        return capability in self.capabilities
