"""User administration: list, create, read, update, deactivate, reset password, sessions of a user."""

import sqlite3
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from appliance.auth.accounts import (
    USER_COLUMNS,
    USER_SCHEMA,
    FieldError,
    NewUser,
    deactivate_user_tx,
    facilities_exist_tx,
    fetch_user_tx,
    insert_user_tx,
    reactivate_user_tx,
    set_password_tx,
    update_user_tx,
    user_json,
    validate_fields,
)
from appliance.auth.audit import AuditAction, record
from appliance.auth.keys import IDENTITY
from appliance.auth.lockout import LockKind
from appliance.auth.passwords import generate_password, hash_password
from appliance.auth.principals import ROLE_RANK, outranks
from appliance.auth.sessions import SessionState
from appliance.auth.usernames import username_key
from appliance.auth.webutil import actor_of, path_id
from appliance.core.blocking import run_blocking
from appliance.core.errors import ApiError, bad_request, forbidden, not_found
from appliance.keys import CLOCK, DB
from appliance.web.openapi import BOOL, ID_QUERY, INT, PAGE_QUERY, STR, TIME, arr, nullable, obj, spec, text
from appliance.web.openapi import ID as ROW_ID
from appliance.web.policy import Principal, Role, can_access_facility, principal, roles
from appliance.web.responses import Page, ok, page_params, paginated, read_json

routes = web.RouteTableDef()
ADMINS = (Role.FACILITY_ADMIN, Role.DEPARTMENT_ADMIN)
ID = r"{id:\d{1,12}}"
USER_CHANGES = obj(
    first_name=text(50), last_name=text(50), email=nullable(text(120)), doc_id=nullable(text(40)),
    role={"enum": ["learner", "facility_admin", "department_admin", "system_admin"]}, facility_id=ROW_ID,
    extra_facility_ids=arr(ROW_ID), active=BOOL,
)
SESSION_SCHEMA = obj("id", "created_at", id=INT, created_at=TIME, last_seen_at=nullable(TIME),
                     expires_at=TIME, client_addr=nullable(STR), user_agent=nullable(STR),
                     auth_method=nullable(STR))
"""A live session as the API shows it (never the secret)."""


def field_error(exc: FieldError) -> ApiError:
    """A FieldError as a 400 naming the field."""
    return bad_request("invalid_field", exc.message, {"field": exc.field})


def scope_clause(p: Principal, column: str = "facility_id") -> tuple[str, list[Any]]:
    """SQL restricting rows to the caller's facilities (nothing for system admins)."""
    if p.role is Role.SYSTEM_ADMIN:
        return "1 = 1", []
    ids = sorted(p.facility_ids)
    return f"{column} IN ({','.join('?' * len(ids))})", list(ids)


async def load_target(request: web.Request, p: Principal, *, manage: bool) -> Any:
    """The user of the path in the caller's scope (404 otherwise); manage also needs a higher role."""
    row = await request.app[DB].fetchone(
        f"SELECT {USER_COLUMNS} FROM users WHERE id = ?",  # noqa: S608
        (path_id(request),),
    )
    if row is None or not can_access_facility(p, row["facility_id"]):
        raise not_found("no such user")
    if manage and not outranks(p.role, Role(row["role"])):
        raise forbidden("you may not manage a user of your own or a higher role")
    return row


async def check_grant(tx: Any, p: Principal, role: str, facility_id: int, extra: list[int]) -> None:
    """The caller may give this role and these facilities (and they exist)."""
    if not outranks(p.role, Role(role)):
        raise forbidden("you may not give this role")
    for fid in [facility_id, *extra]:
        if not can_access_facility(p, fid):
            raise forbidden("not allowed for this facility")
    missing = await facilities_exist_tx(tx, [facility_id, *extra])
    if missing:
        raise bad_request("invalid_field", f"facility {missing[0]} does not exist", {"field": "facility_id"})


@routes.get("/api/v1/users")
@roles(*ADMINS, facility_scoped=True)
@spec(query={**PAGE_QUERY, "facility_id": ID_QUERY, "q": text(100),
             "role": {"enum": ["learner", "facility_admin", "department_admin", "system_admin"]},
             "status": {"enum": ["active", "deactivated", "all"]}}, response=arr(USER_SCHEMA))
async def list_users(request: web.Request) -> web.Response:
    """Users of the caller's facilities; filters: facility_id, role, q, status (active|deactivated|all)."""
    p = principal(request)
    page = page_params(request)
    rows, total = await query_users(request.app[DB], p, request.query, page)
    return paginated([user_json(r) for r in rows], page, total)


async def query_users(db: Any, p: Principal, q: Mapping[str, str], page: Page) -> tuple[list[Any], int]:
    """Users of the caller's facilities; filters facility_id, role, q, status (the API and the staff page)."""
    where, params = scope_clause(p)
    clauses = [where]
    if "facility_id" in q and q["facility_id"]:
        if not q["facility_id"].isdigit() or len(q["facility_id"]) > 12:
            raise bad_request("invalid_parameter", "facility_id must be an integer", {"parameter": "facility_id"})
        clauses.append("facility_id = ?")
        params.append(int(q["facility_id"]))
    if "role" in q and q["role"]:
        if q["role"] not in {r.value for r in Role}:
            raise bad_request("invalid_parameter", "unknown role", {"parameter": "role"})
        clauses.append("role = ?")
        params.append(q["role"])
    status = q.get("status") or "active"
    if status not in ("active", "deactivated", "all"):
        raise bad_request("invalid_parameter", "status must be active, deactivated or all", {"parameter": "status"})
    if status != "all":
        clauses.append("deactivated_at IS NULL" if status == "active" else "deactivated_at IS NOT NULL")
    if q.get("q"):
        term = q["q"][:100].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append(
            "(username_key LIKE ? ESCAPE '\\' OR first_name LIKE ? ESCAPE '\\'"
            " OR last_name LIKE ? ESCAPE '\\' OR doc_id LIKE ? ESCAPE '\\')"
        )
        params.extend([f"%{term.casefold()}%", f"%{term}%", f"%{term}%", f"{term}%"])
    sql_where = " AND ".join(clauses)
    total = await db.fetchval(f"SELECT count(*) FROM users WHERE {sql_where}", params)  # noqa: S608
    rows = await db.fetchall(
        f"SELECT {USER_COLUMNS} FROM users WHERE {sql_where} ORDER BY username_key LIMIT ? OFFSET ?",  # noqa: S608
        [*params, page.limit, page.offset],
    )
    return rows, int(total or 0)


@routes.post("/api/v1/users")
@roles(*ADMINS, facility_scoped=True)
@spec(status=201, body={"type": "object", "required": ["username"], "properties": {
    "username": {"type": "string", "pattern": "^[a-z][a-z0-9]{3,20}$"},
    "role": {"enum": ["learner", "facility_admin"]}, "first_name": {"type": "string", "maxLength": 50},
    "last_name": {"type": "string", "maxLength": 50}}}, response=obj(
    "user", user=USER_SCHEMA, temporary_password=STR), links={
    "GetUser": ("get", "/api/v1/users/{id}", "/data/user/id"),
    "ChangeUser": ("patch", "/api/v1/users/{id}", "/data/user/id"),
    "ResetPassword": ("post", "/api/v1/users/{id}/reset-password", "/data/user/id"),
    "UserSessions": ("get", "/api/v1/users/{id}/sessions", "/data/user/id"),
    "DeactivateUser": ("delete", "/api/v1/users/{id}", "/data/user/id"),
})
async def create_user(request: web.Request) -> web.Response:
    """Create an account; without a password a temporary one is made and shown once."""
    p = principal(request)
    data = await read_json(request)
    row, password, extra = await create_account(request, p, data)
    body: dict[str, Any] = {"user": user_json(row, extra)}
    if password is not None:
        body["temporary_password"] = password
    return ok(body, status=201)


async def create_account(request: web.Request, p: Principal, data: dict[str, Any]) -> tuple[Any, str | None, list[int]]:
    """Create an account; returns (row, temporary password if one was made, extra facilities)."""
    data.setdefault("facility_id", p.facility_id)
    try:
        fields = validate_fields(data, creating=True)
    except FieldError as exc:
        raise field_error(exc) from None
    password = fields.pop("password", None)
    temporary = password is None
    if temporary:
        password = generate_password()
    hashed = await run_blocking("auth", hash_password, password)
    app = request.app
    new = NewUser(
        username=fields["username"],
        role=fields["role"],
        facility_id=fields["facility_id"],
        first_name=fields.get("first_name", ""),
        last_name=fields.get("last_name", ""),
        email=fields.get("email"),
        doc_id=fields.get("doc_id"),
        password_hash=hashed,
        must_change_password=temporary,
        extra_facility_ids=fields.get("extra_facility_ids", []),
    )
    try:
        async with app[DB].transaction() as tx:
            await check_grant(tx, p, new.role, new.facility_id, new.extra_facility_ids)
            row = await insert_user_tx(tx, app[CLOCK].iso_now(), new, actor_of(request, p))
    except sqlite3.IntegrityError:
        # The same answer whatever facility holds the name (see README "Security model": usernames are global).
        raise ApiError(409, "username_taken", "this username is not available", {"field": "username"}) from None
    return row, password if temporary else None, new.extra_facility_ids


async def _extra_ids(request: web.Request, user_id: int) -> list[int]:
    rows = await request.app[DB].fetchall(
        "SELECT facility_id FROM user_facilities WHERE user_id = ? ORDER BY 1", (user_id,)
    )
    return [r["facility_id"] for r in rows]


@routes.get(f"/api/v1/users/{ID}")
@roles(*ADMINS, facility_scoped=True)
@spec(response=USER_SCHEMA)
async def get_user(request: web.Request) -> web.Response:
    """One user of the caller's facilities."""
    row = await load_target(request, principal(request), manage=False)
    return ok(user_json(row, await _extra_ids(request, row["id"])))


@routes.patch(f"/api/v1/users/{ID}")
@roles(*ADMINS, facility_scoped=True)
@spec(body=USER_CHANGES, response=USER_SCHEMA)
async def update_user(request: web.Request) -> web.Response:
    """Change names, email, doc_id, role, facility (ends the user's sessions), or active: true/false."""
    p = principal(request)
    target = await load_target(request, p, manage=True)
    row = await update_account(request, p, target, await read_json(request))
    return ok(user_json(row, await _extra_ids(request, row["id"])))


async def update_account(request: web.Request, p: Principal, target: Any, data: dict[str, Any]) -> Any:
    """Apply changes and active: true/false to a user the caller manages; returns the new row."""
    active = data.pop("active", None)
    if active is not None and not isinstance(active, bool):
        raise bad_request("invalid_field", "active must be true or false", {"field": "active"})
    try:
        fields = validate_fields(data, creating=False)
    except FieldError as exc:
        raise field_error(exc) from None
    if target["id"] == p.user_id and (
        {"role", "facility_id", "extra_facility_ids"} & set(fields) or active is not None
    ):
        raise forbidden("you may not change your own role, facility or status")
    app = request.app
    actor, now = actor_of(request, p), app[CLOCK].iso_now()
    async with app[DB].transaction() as tx:
        before = await fetch_user_tx(tx, target["id"])
        if {"role", "facility_id", "extra_facility_ids"} & set(fields):
            await check_grant(
                tx,
                p,
                fields.get("role", before["role"]),
                fields.get("facility_id", before["facility_id"]),
                fields.get("extra_facility_ids", []),
            )
        row = await update_user_tx(tx, now, before, fields, actor, app[IDENTITY].sessions)
        if active is False and row["deactivated_at"] is None:
            row = await deactivate_user_tx(tx, now, row, actor, app[IDENTITY].sessions)
        elif active is True and row["deactivated_at"] is not None:
            row = await reactivate_user_tx(tx, now, row, actor)
    return row


@routes.delete(f"/api/v1/users/{ID}")
@roles(*ADMINS, facility_scoped=True)
@spec(response=USER_SCHEMA)
async def deactivate_user(request: web.Request) -> web.Response:
    """Deactivate (never erase: the audit log and LMS records keep pointing at it); sessions end."""
    p = principal(request)
    target = await load_target(request, p, manage=True)
    if target["id"] == p.user_id:
        raise forbidden("you may not deactivate yourself")
    app = request.app
    async with app[DB].transaction() as tx:
        before = await fetch_user_tx(tx, target["id"])
        row = before
        if before["deactivated_at"] is None:
            row = await deactivate_user_tx(
                tx, app[CLOCK].iso_now(), before, actor_of(request, p), app[IDENTITY].sessions
            )
    return ok(user_json(row))


@routes.post(f"/api/v1/users/{ID}/reset-password")
@roles(*ADMINS, facility_scoped=True)
@spec(body=obj(), response=obj("temporary_password", "must_change_password", temporary_password=STR,
                                must_change_password={"const": True}))
async def reset_password(request: web.Request) -> web.Response:
    """Issue a temporary password (shown once) that must be changed at next sign-in; lockout cleared."""
    p = principal(request)
    target = await load_target(request, p, manage=True)
    temporary = await reset_account_password(request, p, target)
    return ok({"temporary_password": temporary, "must_change_password": True})


async def reset_account_password(request: web.Request, p: Principal, target: Any) -> str:
    """Issue a temporary password (returned once), end the user's sessions, lift a username lock."""
    if target["auth_source"] != "local":
        raise ApiError(409, "not_local_account", "this account's password is managed by the directory")
    if target["deactivated_at"] is not None:
        raise ApiError(409, "deactivated", "reactivate the account first")
    temporary = generate_password()
    hashed = await run_blocking("auth", hash_password, temporary)
    app = request.app
    state = app[IDENTITY]
    async with app[DB].transaction() as tx:
        await set_password_tx(
            tx,
            app[CLOCK].iso_now(),
            target,
            hashed,
            temporary=True,
            actor=actor_of(request, p),
            sessions=state.sessions,
        )
    await state.lockouts.clear(LockKind.USERNAME, username_key(target["username"]))
    return temporary


@routes.get(f"/api/v1/users/{ID}/sessions")
@roles(*ADMINS, facility_scoped=True)
@spec(response=arr(SESSION_SCHEMA))
async def user_sessions(request: web.Request) -> web.Response:
    """Live sessions of a user."""
    p = principal(request)
    target = await load_target(request, p, manage=False)
    if target["id"] != p.user_id and ROLE_RANK[Role(target["role"])] > ROLE_RANK[p.role]:
        # who is signed in where (addresses, browsers) of a higher-ranked account is not a lower admin's business
        raise not_found("no such user")
    return ok(await request.app[IDENTITY].sessions.list_for_user(target["id"]))


@routes.delete(f"/api/v1/users/{ID}/sessions")
@roles(*ADMINS, facility_scoped=True)
@spec(response=obj("ended", ended={"type": "integer", "minimum": 0}))
async def end_user_sessions(request: web.Request) -> web.Response:
    """End every session of a user."""
    p = principal(request)
    target = await load_target(request, p, manage=True)
    return ok({"ended": await end_all_sessions(request, p, target)})


async def end_all_sessions(request: web.Request, p: Principal, target: Any) -> int:
    """End every session of a user the caller manages (audited); returns how many ended."""
    app = request.app
    async with app[DB].transaction() as tx:
        ended = await app[IDENTITY].sessions.end_for_user_tx(tx, target["id"], SessionState.REVOKED)
    await record(
        app[DB],
        app[CLOCK].iso_now(),
        AuditAction.SESSION_REVOKED,
        actor_of(request, p),
        target_id=target["id"],
        target_name=target["username"],
        facility_id=target["facility_id"],
        details={"sessions": ended},
    )
    return int(ended)


@routes.delete(rf"/api/v1/users/{ID}/sessions/{{sid:\d{{1,12}}}}")
@roles(*ADMINS, facility_scoped=True)
@spec(response=obj("ended", ended={"type": "integer", "minimum": 1}))
async def end_user_session(request: web.Request) -> web.Response:
    """End one session of a user."""
    p = principal(request)
    target = await load_target(request, p, manage=True)
    app = request.app
    ended = await app[IDENTITY].sessions.end_by_id(path_id(request, "sid"), SessionState.REVOKED, target["id"])
    if not ended:
        raise not_found("no such live session")
    await record(
        app[DB],
        app[CLOCK].iso_now(),
        AuditAction.SESSION_REVOKED,
        actor_of(request, p),
        target_id=target["id"],
        target_name=target["username"],
        facility_id=target["facility_id"],
        details={"session_id": path_id(request, "sid")},
    )
    return ok({"ended": ended})
