"""Administration: facilities, the audit log, API tokens."""

import sqlite3
import zoneinfo
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from aiohttp import web

from appliance.auth.accounts import is_row_id
from appliance.auth.audit import AuditAction, entry_json, record
from appliance.auth.opaque import hash_secret, new_api_token
from appliance.auth.principals import ROLE_RANK, outranks
from appliance.auth.routes_users import ADMINS, scope_clause
from appliance.auth.webutil import actor_of, path_id
from appliance.core.clock import iso
from appliance.core.errors import bad_request, conflict, forbidden, not_found
from appliance.keys import CLOCK, DB
from appliance.web.openapi import ANY, BOOL, ID, ID_QUERY, INT, PAGE_QUERY, STR, TIME, arr, nullable, obj, spec, text
from appliance.web.policy import Principal, Role, can_access_facility, principal, roles
from appliance.web.responses import Page, ok, page_params, paginated, read_json

routes = web.RouteTableDef()
MAX_TOKEN_DAYS = 3650
FACILITY_SCHEMA = obj("id", "name", "timezone", "anonymous_browsing", id=ID, name=STR, timezone=STR,
                      created_at=TIME, updated_at=nullable(TIME), anonymous_browsing=BOOL)
"""A facility as the API shows it."""
TOKEN_SCHEMA = obj("id", "name", "prefix", "user_id", "role", "state", id=ID, name=STR, prefix=STR, user_id=ID,
                   role=STR, created_by=nullable(INT), created_at=TIME, expires_at=nullable(TIME),
                   last_used_at=nullable(TIME), state=STR, revoked_at=nullable(TIME))
"""An API token's metadata (never the secret)."""
WHO = obj("user_id", "username", user_id=nullable(INT), username=nullable(STR))
AUDIT_SCHEMA = obj("id", "at", "action", "actor", "target", id=ID, at=TIME, action=STR, actor=WHO, target=WHO,
                   facility_id=nullable(INT), client_addr=nullable(STR), details=ANY)
"""An audit log entry."""


def _facility_json(row: Any) -> dict[str, Any]:
    return {k: row[k] for k in ("id", "name", "timezone", "created_at", "updated_at")} | {
        "anonymous_browsing": bool(row["anonymous_browsing"])
    }


@routes.get("/api/v1/facilities")
@roles(*ADMINS, facility_scoped=True)
@spec(response=arr(FACILITY_SCHEMA))
async def list_facilities(request: web.Request) -> web.Response:
    """Facilities the caller may act on (all for system admins)."""
    where, params = scope_clause(principal(request), "id")
    rows = await request.app[DB].fetchall(f"SELECT * FROM facilities WHERE {where} ORDER BY id", params)  # noqa: S608
    return ok([_facility_json(r) for r in rows])


@routes.post("/api/v1/facilities")
@roles(Role.SYSTEM_ADMIN)
@spec(status=201, body={"type": "object", "required": ["name"], "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 60}, "timezone": {"enum": ["UTC", "Europe/Paris"]}}},
      response=FACILITY_SCHEMA, links={"ChangeFacility": ("patch", "/api/v1/facilities/{id}", "/data/id")})
async def create_facility(request: web.Request) -> web.Response:
    """Create a facility {name, timezone}."""
    data = await read_json(request)
    row = await create_facility_row(request, principal(request), data.get("name"), data.get("timezone", "UTC"))
    return ok(_facility_json(row), status=201)


async def create_facility_row(request: web.Request, p: Principal, raw_name: Any, raw_tz: Any) -> Any:
    """Create a facility (system admins only, checked by the routes); returns its row."""
    name, tz = _check_name(raw_name), _check_timezone(raw_tz)
    app = request.app
    now = app[CLOCK].iso_now()
    try:
        result = await app[DB].execute(
            "INSERT INTO facilities (name, timezone, created_at, updated_at) VALUES (?, ?, ?, ?)",
            (name.strip(), tz, now, now),
        )
    except sqlite3.IntegrityError:
        raise conflict("a facility with this name exists", {"field": "name"}) from None
    await record(
        app[DB],
        now,
        AuditAction.FACILITY_CREATED,
        actor_of(request, p),
        facility_id=result.lastrowid,
        details={"name": name.strip()},
    )
    return await app[DB].fetchone("SELECT * FROM facilities WHERE id = ?", (result.lastrowid,))


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 100 or not name.isprintable():
        raise bad_request("invalid_field", "name must be 1-100 printable characters", {"field": "name"})
    return name.strip()


def _check_timezone(tz: object) -> str:
    if not isinstance(tz, str) or tz not in zoneinfo.available_timezones():
        raise bad_request("invalid_field", "timezone must be an IANA zone such as Europe/Berlin", {"field": "timezone"})
    return tz


@routes.patch(r"/api/v1/facilities/{id:\d{1,12}}")
@roles(*ADMINS, facility_scoped=True)
@spec(body=obj(name=text(60, 1), timezone={"enum": ["UTC", "Europe/Paris"]}, anonymous_browsing=BOOL),
      response=FACILITY_SCHEMA)
async def update_facility(request: web.Request) -> web.Response:
    """Change a facility's name, timezone or anonymous_browsing (admins of that facility)."""
    p = principal(request)
    fid = path_id(request)
    if not can_access_facility(p, fid):
        raise not_found("no such facility")
    return ok(_facility_json(await update_facility_row(request, p, fid, await read_json(request))))


async def update_facility_row(request: web.Request, p: Principal, fid: int, data: dict[str, Any]) -> Any:
    """Change name, timezone or anonymous_browsing of a facility the caller may act on; returns its row."""
    if not can_access_facility(p, fid):
        raise not_found("no such facility")
    unknown = sorted(set(data) - {"name", "timezone", "anonymous_browsing"})
    if unknown:
        raise bad_request("invalid_field", f"{unknown[0]} is not a known field", {"field": unknown[0]})
    changes: dict[str, Any] = {}
    if "name" in data:
        changes["name"] = _check_name(data["name"])
    if "timezone" in data:
        changes["timezone"] = _check_timezone(data["timezone"])
    if "anonymous_browsing" in data:
        if not isinstance(data["anonymous_browsing"], bool):
            raise bad_request(
                "invalid_field", "anonymous_browsing must be true or false", {"field": "anonymous_browsing"}
            )
        changes["anonymous_browsing"] = int(data["anonymous_browsing"])
    app = request.app
    db, now = app[DB], app[CLOCK].iso_now()
    if await db.fetchone("SELECT 1 FROM facilities WHERE id = ?", (fid,)) is None:
        raise not_found("no such facility")
    if changes:
        sets = ", ".join(f"{k} = ?" for k in changes)
        try:
            await db.execute(
                f"UPDATE facilities SET {sets}, updated_at = ? WHERE id = ?",  # noqa: S608 - fixed keys
                (*changes.values(), now, fid),
            )
        except sqlite3.IntegrityError:
            raise conflict("a facility with this name exists", {"field": "name"}) from None
        await record(
            db,
            now,
            AuditAction.FACILITY_UPDATED,
            actor_of(request, p),
            facility_id=fid,
            details={"changed": sorted(changes)},
        )
    return await db.fetchone("SELECT * FROM facilities WHERE id = ?", (fid,))


_AUDIT_FILTERS = {
    "actor_user_id": "actor_user_id = ?",
    "target_user_id": "target_user_id = ?",
    "facility_id": "facility_id = ?",
}


@routes.get("/api/v1/audit")
@roles(*ADMINS, facility_scoped=True)
@spec(query={**PAGE_QUERY, "action": STR, "actor_user_id": ID_QUERY, "target_user_id": ID_QUERY,
             "facility_id": ID_QUERY, "since": text(40), "until": text(40)}, response=arr(AUDIT_SCHEMA))
async def audit_log(request: web.Request) -> web.Response:
    """The audit log, newest first; filters: action, actor_user_id, target_user_id, facility_id, since, until."""
    page = page_params(request)
    rows, total = await query_audit(request.app[DB], principal(request), request.query, page)
    return paginated([entry_json(r) for r in rows], page, total)


async def query_audit(db: Any, p: Principal, query: Mapping[str, str], page: Page) -> tuple[list[Any], int]:
    """Audit entries of the caller's facilities, newest first, filtered (empty filters are ignored)."""
    where, params = scope_clause(p)
    clauses = [where]
    q = {k: v for k, v in query.items() if v != ""}
    if "action" in q:
        if q["action"] not in {a.value for a in AuditAction}:
            raise bad_request("invalid_parameter", "unknown action", {"parameter": "action"})
        clauses.append("action = ?")
        params.append(q["action"])
    for name, clause in _AUDIT_FILTERS.items():
        if name in q:
            if not q[name].isdigit() or len(q[name]) > 12:
                raise bad_request("invalid_parameter", f"{name} must be an integer", {"parameter": name})
            clauses.append(clause)
            params.append(int(q[name]))
    for name, op in (("since", ">="), ("until", "<")):
        if name in q:
            value = q[name]
            if len(value) > 40 or not value[:4].isdigit():
                raise bad_request("invalid_parameter", f"{name} must be an ISO-8601 time", {"parameter": name})
            clauses.append(f"at {op} ?")
            params.append(value)
    sql_where = " AND ".join(clauses)
    total = await db.fetchval(f"SELECT count(*) FROM audit_log WHERE {sql_where}", params)  # noqa: S608
    rows = await db.fetchall(
        f"SELECT * FROM audit_log WHERE {sql_where} ORDER BY id DESC LIMIT ? OFFSET ?",  # noqa: S608
        [*params, page.limit, page.offset],
    )
    return rows, int(total or 0)


def _token_json(row: Any) -> dict[str, Any]:
    return {
        k: row[k]
        for k in (
            "id",
            "name",
            "prefix",
            "user_id",
            "role",
            "created_by",
            "created_at",
            "expires_at",
            "last_used_at",
            "state",
            "revoked_at",
        )
    }


@routes.get("/api/v1/tokens")
@roles(*ADMINS, facility_scoped=True)
@spec(response=arr(TOKEN_SCHEMA))
async def list_tokens(request: web.Request) -> web.Response:
    """API tokens of users in the caller's facilities (never the secret)."""
    p = principal(request)
    where, params = scope_clause(p, "u.facility_id")
    # Token metadata of higher-ranked accounts (a system admin homed in this facility) stays hidden.
    visible = [r.value for r, rank in ROLE_RANK.items() if rank <= ROLE_RANK[p.role]]
    where = f"({where}) AND (u.role IN ({', '.join('?' * len(visible))}) OR u.id = ?)"
    params = [*params, *visible, p.user_id]
    rows = await request.app[DB].fetchall(
        f"SELECT t.* FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE {where} ORDER BY t.id DESC",  # noqa: S608
        params,
    )
    return ok([_token_json(r) for r in rows])


@routes.post("/api/v1/tokens")
@roles(*ADMINS, facility_scoped=True)
@spec(status=201, body={"type": "object", "required": ["name"], "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 100}, "role": {"enum": ["learner", "facility_admin"]},
    "expires_in_days": {"type": "integer", "minimum": 1, "maximum": 365}}},
      response={**TOKEN_SCHEMA, "required": [*TOKEN_SCHEMA["required"], "token"],
                "properties": {**TOKEN_SCHEMA["properties"], "token": STR}},
      links={"RevokeToken": ("delete", "/api/v1/tokens/{id}", "/data/id")})
async def create_token(request: web.Request) -> web.Response:
    """Create a token {name, role, user_id?, expires_in_days?}; the secret is in this answer only."""
    p = principal(request)
    data = await read_json(request)
    name, role = data.get("name"), data.get("role", Role.LEARNER.value)
    if not isinstance(name, str) or not name.strip() or len(name) > 100 or not name.isprintable():
        raise bad_request("invalid_field", "name must be 1-100 printable characters", {"field": "name"})
    if not isinstance(role, str) or role not in {r.value for r in Role}:
        raise bad_request("invalid_field", "unknown role", {"field": "role"})
    user_id = data.get("user_id", p.user_id)
    days = data.get("expires_in_days")
    if not is_row_id(user_id):
        raise bad_request("invalid_field", "user_id must be a positive integer", {"field": "user_id"})
    if days is not None and (not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_TOKEN_DAYS):
        raise bad_request("invalid_field", f"expires_in_days must be 1-{MAX_TOKEN_DAYS}", {"field": "expires_in_days"})
    app = request.app
    db = app[DB]
    owner = await db.fetchone(
        "SELECT id, username, role, facility_id, deactivated_at FROM users WHERE id = ?", (user_id,)
    )
    if owner is None or not can_access_facility(p, owner["facility_id"]) or owner["deactivated_at"]:
        raise not_found("no such user")
    # A token never carries more than its owner has, nor more than its creator could grant.
    if owner["id"] != p.user_id and not outranks(p.role, Role(owner["role"])):
        raise forbidden("you may not make tokens for this user")
    rank = [r.value for r in Role]
    if rank.index(role) > rank.index(owner["role"]) or (role != p.role.value and not outranks(p.role, Role(role))):
        raise forbidden("the token's role may not exceed its owner's or yours")
    token, prefix = new_api_token()
    now = app[CLOCK].now()
    expires = iso(now + timedelta(days=days)) if days else None
    result = await db.execute(
        "INSERT INTO api_tokens (token_hash, prefix, name, user_id, role, created_by, created_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (hash_secret(token), prefix, name.strip(), owner["id"], role, p.user_id, iso(now), expires),
    )
    await record(
        db,
        iso(now),
        AuditAction.TOKEN_CREATED,
        actor_of(request, p),
        target_id=owner["id"],
        target_name=owner["username"],
        facility_id=owner["facility_id"],
        details={"token_id": result.lastrowid, "role": role},
    )
    row = await db.fetchone("SELECT * FROM api_tokens WHERE id = ?", (result.lastrowid,))
    return ok({"token": token, **_token_json(row)}, status=201)


@routes.delete(r"/api/v1/tokens/{id:\d{1,12}}")
@roles(*ADMINS, facility_scoped=True)
@spec(response=obj("revoked", revoked={"const": True}))
async def revoke_token(request: web.Request) -> web.Response:
    """Revoke a token at once."""
    p = principal(request)
    app = request.app
    db = app[DB]
    row = await db.fetchone(
        "SELECT t.id, t.user_id, u.username, u.role, u.facility_id FROM api_tokens t JOIN users u"
        " ON u.id = t.user_id WHERE t.id = ?",
        (path_id(request),),
    )
    if row is None or not can_access_facility(p, row["facility_id"]):
        raise not_found("no such token")
    if row["user_id"] != p.user_id and not outranks(p.role, Role(row["role"])):
        raise forbidden("you may not revoke this user's tokens")
    now = app[CLOCK].iso_now()
    await db.execute(
        "UPDATE api_tokens SET state = 'revoked', revoked_at = ? WHERE id = ? AND state = 'active'", (now, row["id"])
    )
    await record(
        db,
        now,
        AuditAction.TOKEN_REVOKED,
        actor_of(request, p),
        target_id=row["user_id"],
        target_name=row["username"],
        facility_id=row["facility_id"],
        details={"token_id": row["id"]},
    )
    return ok({"revoked": True})
