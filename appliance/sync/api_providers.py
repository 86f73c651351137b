"""Provider API: create, list, change, test, sync now, and the unmatched-users queue with linking."""

from __future__ import annotations

import logging
import sqlite3
from enum import StrEnum
from typing import Any

from aiohttp import web

from appliance.connectors.errors import AuthFailed, NotFound, NotPermitted, Transient
from appliance.core import egress
from appliance.core.errors import ApiError, bad_request, conflict, not_found
from appliance.keys import CONFIG, DB, HTTP_CLIENT
from appliance.sync import store
from appliance.sync.connect import credentials_saver, open_connector
from appliance.sync.keys import ENGINE, VAULT
from appliance.sync.model import Job, Trigger
from appliance.sync.scheduler import enqueue
from appliance.sync.validate import known_types, provider_fields
from appliance.web.openapi import BOOL, INT, PAGE_QUERY, STR, TIME, arr, nullable, obj, spec, text
from appliance.web.openapi import ID as ROW_ID
from appliance.web.policy import Principal, Role, can_access_facility, principal, require_facility, roles
from appliance.web.responses import ok, page_params, paginated, read_json

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
ADMINS = (Role.FACILITY_ADMIN, Role.DEPARTMENT_ADMIN)

PROVIDER_SCHEMA = obj(
    "id", "type", "name", "base_url", "state", "push_roster",
    id=ROW_ID, type=STR, name=STR, base_url=STR, account_id=nullable(STR), facility_id=nullable(INT), state=STR,
    push_roster=BOOL, runtime_state=nullable(STR), uplink=nullable(STR), last_error=nullable(STR),
    last_pull_at=nullable(TIME), last_push_at=nullable(TIME), created_at=TIME, updated_at=nullable(TIME),
)
"""A provider as the API shows it (never its credentials)."""
PROVIDER_FIELDS = {
    "name": text(100, 1), "base_url": {"type": "string", "maxLength": 500, "pattern": "^https?://[a-z0-9.-]+"},
    "account_id": text(40), "credentials": {"type": "object", "maxProperties": 4, "additionalProperties": text(200)},
    "facility_id": nullable(ROW_ID), "state": {"enum": ["enabled", "disabled", "archived"]}, "push_roster": BOOL,
}


def provider_id(request: web.Request) -> int:
    """The {id} path parameter as an int (404 otherwise)."""
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 12:
        raise not_found("no such provider")
    return int(raw)


async def provider_for(app: web.Application, p: Principal, pid: int) -> sqlite3.Row:
    """Provider `pid` if the caller may see it (global providers are visible to every admin)."""
    row = await store.provider_row(app[DB], pid)
    if row is None or (row["facility_id"] is not None and not can_access_facility(p, row["facility_id"])):
        raise not_found("no such provider")
    return row


async def visible_provider(request: web.Request, p: Principal) -> sqlite3.Row:
    """The provider in the path if the caller may see it."""
    return await provider_for(request.app, p, provider_id(request))


def poke(app: web.Application) -> None:
    """Tell this process's engine (if it is the primary) to look at providers now."""
    engine = app.get(ENGINE)
    if engine is not None:
        engine.poke.set()


async def check_facility(app: web.Application, p: Principal, facility_id: int | None) -> None:
    """A provider serving every facility needs a system admin; a facility one needs access to it."""
    if facility_id is None:
        if p.role is not Role.SYSTEM_ADMIN:
            raise ApiError(403, "forbidden", "only a system admin manages providers for every facility")
        return
    if await app[DB].fetchval("SELECT 1 FROM facilities WHERE id = ?", (facility_id,)) is None:
        raise bad_request("invalid_field", "facility_id: no such facility", {"field": "facility_id"})
    require_facility(p, facility_id)


@routes.post("/api/v1/providers")
@roles(Role.SYSTEM_ADMIN)
@spec(status=201, body=obj("type", "name", "base_url", "credentials", **PROVIDER_FIELDS,
                           type={"enum": ["canvas", "brightspace", "moodle", "kolibri"]}),
      response=PROVIDER_SCHEMA, links={
    "GetProvider": ("get", "/api/v1/providers/{id}", "/data/id"),
    "ChangeProvider": ("patch", "/api/v1/providers/{id}", "/data/id"),
    "TestProvider": ("post", "/api/v1/providers/{id}/test", "/data/id"),
})
async def create_provider(request: web.Request) -> web.Response:
    """Create a provider (system admins only: a base_url decides where the daemon connects and sends tokens);
    credentials are encrypted before they touch the database."""
    return ok(await add_provider(request.app, principal(request), await read_json(request)), status=201)


async def add_provider(app: web.Application, p: Principal, body: dict[str, Any]) -> dict[str, Any]:
    """Validate and store a new provider (the caller is a system admin); its view."""
    if p.role is not Role.SYSTEM_ADMIN:
        raise ApiError(403, "forbidden", "only a system admin adds a provider")
    fields = provider_fields(body, partial=False)
    await check_facility(app, p, fields.get("facility_id"))
    db = app[DB]
    sealed = app[VAULT].seal(fields.pop("credentials"))
    try:
        async with db.transaction() as tx:
            # Records queued before the provider existed are not its business (its floor).
            cur = await tx.execute("SELECT COALESCE(MAX(id), 0) FROM outbox")
            floor_row = await cur.fetchone()
            floor = floor_row[0] if floor_row else 0
            cur = await tx.execute(
                "INSERT INTO providers (type, name, base_url, account_id, credentials, facility_id, state,"
                " push_roster, outbox_floor) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    fields["type"],
                    fields["name"],
                    fields["base_url"],
                    fields.get("account_id", ""),
                    sealed,
                    fields.get("facility_id"),
                    fields.get("state", "enabled"),
                    fields.get("push_roster", 1),
                    floor,
                ),
            )
            new_id = cur.lastrowid
    except sqlite3.IntegrityError:
        raise conflict("a provider with this name exists") from None
    assert new_id is not None
    poke(app)
    row = await store.provider_row(db, new_id)
    assert row is not None
    return store.provider_view(row)


@routes.get("/api/v1/providers")
@roles(*ADMINS)
@spec(query=PAGE_QUERY, response=arr(PROVIDER_SCHEMA))
async def list_providers(request: web.Request) -> web.Response:
    """Providers the caller may see."""
    p = principal(request)
    page = page_params(request)
    rows = [
        r
        for r in await request.app[DB].fetchall(f"SELECT {store.PROVIDER_COLUMNS} FROM providers ORDER BY id")
        if r["facility_id"] is None or can_access_facility(p, r["facility_id"])
    ]
    return paginated([store.provider_view(r) for r in rows[page.offset : page.offset + page.limit]], page, len(rows))


@routes.get("/api/v1/providers/{id}")
@roles(*ADMINS)
@spec(response=PROVIDER_SCHEMA)
async def get_provider(request: web.Request) -> web.Response:
    """One provider (never its credentials)."""
    return ok(store.provider_view(await visible_provider(request, principal(request))))


@routes.patch("/api/v1/providers/{id}")
@roles(Role.DEPARTMENT_ADMIN)
@spec(body={**obj(**PROVIDER_FIELDS), "minProperties": 1}, response=PROVIDER_SCHEMA)
async def patch_provider(request: web.Request) -> web.Response:
    """Change fields; new credentials clear auth_failed (the engine restarts the provider)."""
    p = principal(request)
    row = await visible_provider(request, p)
    return ok(await change_provider(request.app, p, row, await read_json(request)))


async def change_provider(app: web.Application, p: Principal, row: sqlite3.Row, body: dict[str, Any]) -> dict[str, Any]:
    """Apply a validated change to a provider the caller may see (a department admin at least); its view."""
    if p.role not in (Role.DEPARTMENT_ADMIN, Role.SYSTEM_ADMIN):
        raise ApiError(403, "forbidden", "only a department or system admin changes a provider")
    fields = provider_fields(body, partial=True, current_type=row["type"])
    if not fields:
        raise bad_request("invalid_body", "nothing to change")
    if "base_url" in fields and fields["base_url"] != row["base_url"] and p.role is not Role.SYSTEM_ADMIN:
        # where the daemon connects, with the provider's token, is the system admin's decision
        raise ApiError(403, "forbidden", "only a system admin changes a provider's base_url")
    await check_facility(app, p, fields.get("facility_id", row["facility_id"]))
    if "credentials" in fields:
        fields["credentials"] = app[VAULT].seal(fields["credentials"])
        fields["runtime_state"] = "ready"
    sets = ", ".join(f"{k} = ?" for k in fields)
    try:
        await app[DB].execute(
            f"UPDATE providers SET {sets}, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?",
            (*fields.values(), row["id"]),
        )
    except sqlite3.IntegrityError:
        raise conflict("a provider with this name exists") from None
    poke(app)
    updated = await store.provider_row(app[DB], row["id"])
    assert updated is not None
    return store.provider_view(updated)


class ProbeReason(StrEnum):
    """Why a provider test failed, as the API reports it (never the upstream's own text)."""

    UNREACHABLE = "unreachable"
    REFUSED_BY_POLICY = "refused_by_policy"
    AUTH_FAILED = "auth_failed"
    UNEXPECTED_ANSWER = "unexpected_answer"


PROBE_MESSAGES = {
    ProbeReason.UNREACHABLE: "the provider cannot be reached (network down, timed out, or a server error)",
    ProbeReason.REFUSED_BY_POLICY: "the provider's address is not allowed by egress.allowed_networks",
    ProbeReason.AUTH_FAILED: "the provider refused the credentials or their permissions",
    ProbeReason.UNEXPECTED_ANSWER: "the provider answered, but not as this connector expects",
}


def classify_probe(exc: Exception) -> tuple[ProbeReason, dict[str, Any]]:
    """The reason and the reachable/credentials/permitted flags of a failed probe.

    Upstream error text is deliberately dropped: echoing it let an admin read internal services' answers
    (and use the test button as a port scanner).
    """
    if egress.refused(exc):
        return ProbeReason.REFUSED_BY_POLICY, {"reachable": False, "credentials_valid": None, "permitted": None}
    if isinstance(exc, Transient):
        return ProbeReason.UNREACHABLE, {"reachable": False, "credentials_valid": None, "permitted": None}
    if isinstance(exc, AuthFailed):
        return ProbeReason.AUTH_FAILED, {"credentials_valid": False, "permitted": None}
    if isinstance(exc, NotPermitted) and not isinstance(exc, NotFound):
        return ProbeReason.AUTH_FAILED, {"permitted": False}
    return ProbeReason.UNEXPECTED_ANSWER, {}


@routes.post("/api/v1/providers/{id}/test")
@roles(*ADMINS)
@spec(body=obj(), response=obj("reachable", "credentials_valid", "permitted", "reason", "error",
                               reachable=BOOL, credentials_valid=nullable(BOOL), permitted=nullable(BOOL),
                               reason=nullable({"enum": [r.value for r in ProbeReason]}),
                               error=nullable(STR)))
async def test_provider(request: web.Request) -> web.Response:
    """Probe reachability and credentials now and say, as a classified reason, which one failed."""
    return ok(await probe_provider(request.app, await visible_provider(request, principal(request))))


async def probe_provider(app: web.Application, row: sqlite3.Row) -> dict[str, Any]:
    """Probe a provider the caller may see: the flags and, on failure, the classified reason."""
    # A probe may rotate an OAuth refresh token: store it like the engine would (its worker restarts),
    # but only over the credentials read here (read first: a rotation landing meanwhile makes it refuse).
    loaded = await app[DB].fetchval("SELECT credentials FROM providers WHERE id = ?", (row["id"],))
    provider = await store.load_provider(app[DB], app[VAULT], row["id"])
    assert provider is not None
    save = credentials_saver(app[DB], app[VAULT], provider.id, loaded)
    opened = open_connector(provider, app[HTTP_CLIENT], app[CONFIG].sync, save)
    if opened is None:
        raise bad_request("unsupported", f"no connector for {provider.type} in this version")
    connector = opened.connector
    result: dict[str, Any] = {"reachable": True, "credentials_valid": True, "permitted": True, "reason": None,
                              "error": None}
    try:
        await connector.probe(app[CONFIG].sync.probe_timeout_s)
    except Exception as exc:  # noqa: BLE001 - any failure is classified, none is echoed
        reason, flags = classify_probe(exc)
        result.update(flags, reason=reason.value, error=PROBE_MESSAGES[reason])
        log.info("provider %d test failed: %s (%s)", row["id"], reason.value, type(exc).__name__)
    return result


@routes.post("/api/v1/providers/{id}/sync")
@roles(*ADMINS)
@spec(status=202, body=obj(job={"enum": ["pull", "report"]}),
      response=obj("run_id", "state", run_id=ROW_ID, state={"const": "queued"}))
async def sync_now(request: web.Request) -> web.Response:
    """Queue a pull now (or `{"job": "report"}`)."""
    row = await visible_provider(request, principal(request))
    body = await read_json(request) if request.can_read_body else {}
    return ok({"run_id": await queue_run(request.app, row, body.get("job", "pull")), "state": "queued"}, status=202)


async def queue_run(app: web.Application, row: sqlite3.Row, job: Any) -> int | None:
    """Queue a manual pull or report run of an enabled provider; the run's id."""
    if job not in ("pull", "report"):
        raise bad_request("invalid_field", "job: must be pull or report", {"field": "job"})
    if row["state"] != "enabled":
        raise conflict("the provider is not enabled")
    return await enqueue(app[DB], row["id"], Job(job), Trigger.MANUAL, None)


@routes.get("/api/v1/providers/{id}/unmatched-users")
@roles(*ADMINS)
@spec(query=PAGE_QUERY, response=arr(obj("external_user_id", external_user_id=STR, external_sis_id=nullable(STR),
                                         external_login_id=nullable(STR), external_name=nullable(STR),
                                         external_email=nullable(STR), updated_at=nullable(TIME))))
async def unmatched_users(request: web.Request) -> web.Response:
    """Upstream users not linked to a local one (never merged silently)."""
    row = await visible_provider(request, principal(request))
    page = page_params(request)
    rows, total = await unmatched_rows(request.app, row, page.limit, page.offset)
    return paginated(rows, page, total)


async def unmatched_rows(app: web.Application, row: sqlite3.Row, limit: int,
                         offset: int) -> tuple[list[dict[str, Any]], int]:
    """A page of a provider's upstream users linked to nobody, and how many there are."""
    db = app[DB]
    total = await db.fetchval(
        "SELECT COUNT(*) FROM provider_user_mappings WHERE provider_id = ? AND user_id IS NULL", (row["id"],)
    )
    rows = await db.fetchall(
        "SELECT external_user_id, external_sis_id, external_login_id, external_name, external_email, updated_at"
        " FROM provider_user_mappings WHERE provider_id = ? AND user_id IS NULL ORDER BY id LIMIT ? OFFSET ?",
        (row["id"], limit, offset),
    )
    return [dict(r) for r in rows], int(total or 0)


@routes.post("/api/v1/providers/{id}/unmatched-users/{external_id}/link")
@roles(*ADMINS, facility_scoped=True)
@spec(body=obj("user_id", user_id=ROW_ID),
      response=obj("external_user_id", "user_id", "matched_by", external_user_id=STR, user_id=ROW_ID,
                   matched_by={"const": "admin"}))
async def link_user(request: web.Request) -> web.Response:
    """Link an upstream user to a local one: `{"user_id": N}`."""
    p = principal(request)
    row = await visible_provider(request, p)
    body = await read_json(request)
    return ok(await link_external_user(request.app, p, row, request.match_info["external_id"], body.get("user_id")))


async def link_external_user(app: web.Application, p: Principal, row: sqlite3.Row, external: str,
                             user_id: Any) -> dict[str, Any]:
    """Link an unmatched upstream user of a visible provider to a local account the caller manages."""
    if isinstance(user_id, bool) or not isinstance(user_id, int):
        raise bad_request("invalid_field", "user_id: must be an integer", {"field": "user_id"})
    db = app[DB]
    user = await db.fetchone("SELECT id, facility_id FROM users WHERE id = ?", (user_id,))
    if user is None:
        raise bad_request("invalid_field", "user_id: no such user", {"field": "user_id"})
    require_facility(p, user["facility_id"])
    async with db.transaction() as tx:
        cur = await tx.execute(
            "SELECT user_id FROM provider_user_mappings WHERE provider_id = ? AND external_user_id = ?",
            (row["id"], external),
        )
        mapping = await cur.fetchone()
        if mapping is None:
            raise not_found("no such upstream user")
        if mapping["user_id"] is not None:
            raise conflict("this upstream user is already linked")
        cur = await tx.execute(
            "SELECT 1 FROM provider_user_mappings WHERE provider_id = ? AND user_id = ?", (row["id"], user_id)
        )
        if await cur.fetchone() is not None:
            raise conflict("this learner is already linked to another upstream user")
        await tx.execute(
            "UPDATE provider_user_mappings SET user_id = ?, matched_by = 'admin',"
            " updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE provider_id = ?"
            " AND external_user_id = ?",
            (user_id, row["id"], external),
        )
    return {"external_user_id": external, "user_id": user_id, "matched_by": "admin"}


def provider_types() -> list[str]:
    """Known provider types (for docs): the appliance's own and those of installed connectors."""
    return known_types()
