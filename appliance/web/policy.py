"""Route access policies: every handler declares who may call it, and anything undeclared is denied."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

from aiohttp import web

from appliance.core.errors import forbidden, unauthorized


class Role(Enum):
    """Roles, weakest first; values are what the database stores."""

    LEARNER = "learner"
    FACILITY_ADMIN = "facility_admin"
    DEPARTMENT_ADMIN = "department_admin"
    SYSTEM_ADMIN = "system_admin"


ADMIN_ROLES = frozenset({Role.FACILITY_ADMIN, Role.DEPARTMENT_ADMIN, Role.SYSTEM_ADMIN})


class AuthVia(Enum):
    """How the caller proved who they are; CSRF applies only to cookie sessions."""

    SESSION = "session"
    TOKEN = "token"  # noqa: S105 - a kind of credential, not one


@dataclass(frozen=True)
class Principal:
    """The signed-in caller."""

    user_id: int
    uuid: str
    username: str
    role: Role
    facility_id: int
    facility_ids: frozenset[int]
    via: AuthVia = AuthVia.SESSION
    session_id: str | None = None
    must_change_password: bool = False


class Access(Enum):
    """The kinds of policy."""

    PUBLIC = "public"
    SIGNED_IN = "signed_in"
    ROLES = "roles"


@dataclass(frozen=True)
class Policy:
    """Who may call a route; facility_scoped means the handler also checks the resource's facility."""

    access: Access
    roles: frozenset[Role] = field(default_factory=frozenset)
    facility_scoped: bool = False

    def describe(self) -> str:
        """Short text for docs and the route listing."""
        if self.access is not Access.ROLES:
            return self.access.value
        names = ",".join(sorted(r.value for r in self.roles))
        return f"roles({names}{'; facility-scoped' if self.facility_scoped else ''})"


POLICY_ATTR = "__appliance_policy__"
PRINCIPAL_KEY = web.RequestKey("principal", Principal)
H = TypeVar("H", bound=Callable[..., Awaitable[Any]])


def _mark(policy: Policy) -> Callable[[H], H]:
    def decorate(handler: H) -> H:
        setattr(handler, POLICY_ATTR, policy)
        return handler

    return decorate


public = _mark(Policy(Access.PUBLIC))
"""Anyone, signed in or not."""

signed_in = _mark(Policy(Access.SIGNED_IN))
"""Any signed-in user."""


def roles(*allowed: Role, facility_scoped: bool = False) -> Callable[[H], H]:
    """Only the listed roles (system admins are always allowed)."""
    return _mark(Policy(Access.ROLES, frozenset(allowed) | {Role.SYSTEM_ADMIN}, facility_scoped))


def policy_of(handler: Any) -> Policy | None:
    """The declared policy of a handler (function, method or class-based view), or None."""
    target = handler
    for _ in range(3):
        found = getattr(target, POLICY_ATTR, None)
        if found is not None:
            return found  # type: ignore[no-any-return,unused-ignore]
        target = getattr(target, "__wrapped__", None) or getattr(target, "__func__", None)
        if target is None:
            break
    return None


def maybe_principal(request: web.Request) -> Principal | None:
    """The signed-in caller, if any."""
    return request.get(PRINCIPAL_KEY)


def principal(request: web.Request) -> Principal:
    """The signed-in caller, or a 401."""
    p = maybe_principal(request)
    if p is None:
        raise unauthorized()
    return p


def can_access_facility(p: Principal, facility_id: int | None) -> bool:
    """System admins reach every facility; everyone else only their own ones."""
    if p.role is Role.SYSTEM_ADMIN:
        return True
    return facility_id is not None and facility_id in p.facility_ids


def require_facility(p: Principal, facility_id: int | None) -> None:
    """Raise 403 unless the caller may act on that facility."""
    if not can_access_facility(p, facility_id):
        raise forbidden("not allowed for this facility")


def check(policy: Policy | None, p: Principal | None) -> None:
    """Enforce a policy for a caller: 401 when sign-in is needed, 403 when the role is not enough."""
    if policy is None:
        raise forbidden("this route has no access policy")
    if policy.access is Access.PUBLIC:
        return
    if p is None:
        raise unauthorized()
    if policy.access is Access.ROLES and p.role not in policy.roles:
        raise forbidden("your role may not do this")
