"""Webhook API (system admins): CRUD, secret rotation, the delivery log, redeliver and ping."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from typing import Any

from aiohttp import web

from appliance.core.clock import iso
from appliance.core.errors import bad_request, conflict, not_found
from appliance.db.events import EventType, add_event
from appliance.events.keys import DISPATCHER, SECRETS
from appliance.events.signing import new_secret
from appliance.events.store import DELIVERY_COLUMNS, WEBHOOK_COLUMNS, seal_secrets, webhook_view
from appliance.events.store import delivery_view as _delivery_view
from appliance.events.validate import webhook_fields
from appliance.keys import CLOCK, CONFIG, DB
from appliance.web.openapi import ANY, BOOL, INT, NUM, PAGE_QUERY, STR, TIME, arr, nullable, obj, spec, text
from appliance.web.openapi import ID as ROW_ID
from appliance.web.policy import principal, roles
from appliance.web.responses import ok, page_params, paginated, read_json

routes = web.RouteTableDef()
DELIVERY_STATES = ("pending", "succeeded", "failed")
WEBHOOK_SCHEMA = obj(
    "id", "url", "events", "headers", "enabled", "failure_count",
    id=ROW_ID, url=STR, description=nullable(STR), events=arr(STR), headers={"type": "object"}, enabled=BOOL,
    disabled_reason=nullable(STR), failure_count=INT, failing_since=nullable(TIME), last_success_at=nullable(TIME),
    last_failure_at=nullable(TIME), secret_rotated_at=nullable(TIME), previous_secret_until=nullable(TIME),
    created_at=TIME, updated_at=TIME,
)
"""A webhook as the API shows it (never its secret)."""
DELIVERY_SCHEMA = obj(
    "id", "webhook_id", "event_id", "event_type", "state", "attempts", "log",
    id=ROW_ID, webhook_id=ROW_ID, event_id=ANY, event_type=STR, event_created_at=nullable(TIME),
    state={"enum": list(DELIVERY_STATES)}, attempts=INT, next_attempt_at=nullable(TIME), expires_at=nullable(TIME),
    last_status=nullable(INT), last_error=nullable(STR), created_at=nullable(TIME), finished_at=nullable(TIME),
    log=arr(obj("attempt", "at", "ok", attempt=INT, at=TIME, ok=BOOL, status_code=nullable(INT),
                latency_ms=nullable(NUM), error=nullable(STR), response_excerpt=nullable(STR))),
)
"""One delivery of the log, with its attempts."""
WEBHOOK_FIELDS = {"url": {"type": "string", "maxLength": 2000, "pattern": "^https?://"},
                  "description": text(500), "events": {**arr(text(64, 1)), "maxItems": 20},
                  "headers": {"type": "object", "maxProperties": 5, "additionalProperties": text(200)},
                  "enabled": BOOL}


def _path_id(request: web.Request, name: str, what: str) -> int:
    raw = request.match_info[name]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
        raise not_found(f"no such {what}")
    return int(raw)


async def webhook_row(app: web.Application, webhook_id: int) -> sqlite3.Row:
    """The webhook (its stored columns), or a 404."""
    row = await app[DB].fetchone(f"SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?", (webhook_id,))
    if row is None:
        raise not_found("no such webhook")
    return row


async def _webhook(request: web.Request) -> sqlite3.Row:
    return await webhook_row(request.app, _path_id(request, "id", "webhook"))


def _poke(app: web.Application) -> None:
    dispatcher = app.get(DISPATCHER)
    if dispatcher is not None:
        dispatcher.invalidate()


@routes.get("/api/v1/webhooks")
@roles()
@spec(query=PAGE_QUERY, response=arr(WEBHOOK_SCHEMA))
async def list_webhooks(request: web.Request) -> web.Response:
    """Every webhook (never a secret)."""
    page = page_params(request)
    db = request.app[DB]
    total = await db.fetchval("SELECT COUNT(*) FROM webhooks")
    rows = await db.fetchall(f"SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY id LIMIT ? OFFSET ?",
                             (page.limit, page.offset))
    return paginated([webhook_view(r) for r in rows], page, int(total))


@routes.post("/api/v1/webhooks")
@roles()
@spec(status=201, body=obj("url", **WEBHOOK_FIELDS),
      response={**WEBHOOK_SCHEMA, "required": [*WEBHOOK_SCHEMA["required"], "secret"],
                "properties": {**WEBHOOK_SCHEMA["properties"], "secret": STR}},
      links={"GetWebhook": ("get", "/api/v1/webhooks/{id}", "/data/id"),
             "ChangeWebhook": ("patch", "/api/v1/webhooks/{id}", "/data/id"),
             "Deliveries": ("get", "/api/v1/webhooks/{id}/deliveries", "/data/id")})
async def create_webhook(request: web.Request) -> web.Response:
    """Create a webhook; the answer carries its signing secret, the only time it is shown."""
    return ok(await add_webhook(request.app, principal(request).user_id, await read_json(request)), status=201)


async def add_webhook(app: web.Application, user_id: int, body: dict[str, Any]) -> dict[str, Any]:
    """Validate and store a webhook; its view with the signing secret (the only time it is shown)."""
    fields = webhook_fields(body, partial=False)
    db = app[DB]
    limit = app[CONFIG].webhooks.max_webhooks
    secret = new_secret()
    sealed = seal_secrets(app[SECRETS], secret)
    now = app[CLOCK].iso_now()
    async with db.transaction() as tx:
        cur = await tx.execute("SELECT COUNT(*) FROM webhooks")
        count = await cur.fetchone()
        if count is not None and count[0] >= limit:
            raise conflict(f"at most {limit} webhooks may exist (webhooks.max_webhooks)")
        cur = await tx.execute(
            "INSERT INTO webhooks (url, description, events, headers, enabled, secret, created_by, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (fields["url"], fields.get("description", ""), json.dumps(fields.get("events", ["*"])),
             json.dumps(fields.get("headers", {})), int(fields.get("enabled", True)), sealed,
             user_id, now, now),
        )
        new_id = cur.lastrowid
    row = await db.fetchone(f"SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?", (new_id,))
    assert row is not None
    return {**webhook_view(row), "secret": secret}


@routes.get("/api/v1/webhooks/{id}")
@roles()
@spec(response=WEBHOOK_SCHEMA)
async def get_webhook(request: web.Request) -> web.Response:
    """One webhook (never its secret)."""
    return ok(webhook_view(await _webhook(request)))


@routes.patch("/api/v1/webhooks/{id}")
@roles()
@spec(body={**obj(**WEBHOOK_FIELDS), "minProperties": 1}, response=WEBHOOK_SCHEMA)
async def patch_webhook(request: web.Request) -> web.Response:
    """Change fields; enabling a webhook again clears its failure streak."""
    return ok(await change_webhook(request.app, await _webhook(request), await read_json(request)))


async def change_webhook(app: web.Application, row: sqlite3.Row, body: dict[str, Any]) -> dict[str, Any]:
    """Apply a validated change; enabling a webhook again clears its failure streak. Its new view."""
    fields = webhook_fields(body, partial=True)
    sets: dict[str, Any] = {}
    for name in ("url", "description"):
        if name in fields:
            sets[name] = fields[name]
    for name in ("events", "headers"):
        if name in fields:
            sets[name] = json.dumps(fields[name])
    if "enabled" in fields:
        sets["enabled"] = int(fields["enabled"])
        if fields["enabled"] and not row["enabled"]:
            sets.update(failure_count=0, failing_since=None, disabled_reason=None)
    sets["updated_at"] = app[CLOCK].iso_now()
    assignments = ", ".join(f"{k} = ?" for k in sets)
    await app[DB].execute(f"UPDATE webhooks SET {assignments} WHERE id = ?",  # noqa: S608 - fixed keys
                          (*sets.values(), row["id"]))
    _poke(app)
    return webhook_view(await webhook_row(app, row["id"]))


@routes.delete("/api/v1/webhooks/{id}")
@roles()
@spec(status=204, content_type=None)
async def delete_webhook(request: web.Request) -> web.Response:
    """Delete a webhook with its deliveries and their log."""
    await remove_webhook(request.app, await _webhook(request))
    return web.Response(status=204)


async def remove_webhook(app: web.Application, row: sqlite3.Row) -> None:
    """Delete a webhook with its deliveries and their log."""
    await app[DB].execute("DELETE FROM webhooks WHERE id = ?", (row["id"],))


@routes.post("/api/v1/webhooks/{id}/rotate-secret")
@roles()
@spec(body=obj(), response=obj("id", "secret", "previous_secret_until", id=ROW_ID, secret=STR,
                               previous_secret_until=nullable(TIME)))
async def rotate_secret(request: web.Request) -> web.Response:
    """A new signing secret, shown once; the previous one keeps signing too during the overlap."""
    row = await _webhook(request)
    vault = request.app[SECRETS]
    current = str(vault.open(row["secret"])["current"])
    secret = new_secret()
    clock = request.app[CLOCK]
    overlap = request.app[CONFIG].webhooks.secret_overlap_s
    until = iso(clock.now() + timedelta(seconds=overlap)) if overlap > 0 else None
    sealed = seal_secrets(vault, secret, current if until else None)
    now = clock.iso_now()
    await request.app[DB].execute(
        "UPDATE webhooks SET secret = ?, secret_rotated_at = ?, previous_secret_until = ?, updated_at = ? WHERE id = ?",
        (sealed, now, until, now, row["id"]),
    )
    return ok({"id": row["id"], "secret": secret, "previous_secret_until": until})


@routes.get("/api/v1/webhooks/{id}/deliveries")
@roles()
@spec(query={**PAGE_QUERY, "state": {"enum": list(DELIVERY_STATES)}}, response=arr(DELIVERY_SCHEMA))
async def list_deliveries(request: web.Request) -> web.Response:
    """The delivery log, newest first, each delivery with its attempts; `?state=` filters."""
    row = await _webhook(request)
    page = page_params(request)
    found, total = await deliveries(request.app, row, page.limit, page.offset, request.query.get("state"))
    return paginated(found, page, total)


async def deliveries(app: web.Application, row: sqlite3.Row, limit: int, offset: int,
                     state: str | None = None) -> tuple[list[dict[str, Any]], int]:
    """A page of a webhook's deliveries, newest first, each with its attempts; and how many there are."""
    if state is not None and state not in DELIVERY_STATES:
        raise bad_request("invalid_parameter", f"state must be one of {', '.join(DELIVERY_STATES)}",
                          {"parameter": "state"})
    where, params = "d.webhook_id = ?", [row["id"]]
    if state:
        where += " AND d.state = ?"
        params.append(state)
    db = app[DB]
    total = await db.fetchval(f"SELECT COUNT(*) FROM webhook_deliveries d WHERE {where}", params)  # noqa: S608
    rows = await db.fetchall(
        f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN events e ON e.seq = d.event_seq"  # noqa: S608
        f" WHERE {where} ORDER BY d.id DESC LIMIT ? OFFSET ?",
        (*params, limit, offset),
    )
    attempts: dict[int, list[sqlite3.Row]] = {r["id"]: [] for r in rows}
    if rows:
        marks = ",".join("?" * len(rows))
        for a in await db.fetchall(
            f"SELECT * FROM webhook_attempts WHERE delivery_id IN ({marks}) ORDER BY delivery_id, attempt, id",  # noqa: S608
            list(attempts),
        ):
            attempts[a["delivery_id"]].append(a)
    return [_delivery_view(r, attempts[r["id"]]) for r in rows], int(total)


@routes.post("/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver")
@roles()
@spec(status=202, body=obj(), response=obj("id", "state", "next_attempt_at", id=ROW_ID, state={"const": "pending"},
                                          next_attempt_at=TIME))
async def redeliver(request: web.Request) -> web.Response:
    """Send a delivery again now (same webhook-id), with a fresh retry window."""
    row = await _webhook(request)
    delivery_id = _path_id(request, "delivery", "delivery")
    clock = request.app[CLOCK]
    now = clock.now()
    expires = iso(now + timedelta(seconds=request.app[CONFIG].webhooks.retry_window_s))
    result = await request.app[DB].execute(
        "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = ?, expires_at = ?, finished_at = NULL"
        " WHERE id = ? AND webhook_id = ?",
        (iso(now), expires, delivery_id, row["id"]),
    )
    if result.rowcount == 0:
        raise not_found("no such delivery")
    _poke(request.app)
    return ok({"id": delivery_id, "state": "pending", "next_attempt_at": iso(now)}, status=202)


@routes.post("/api/v1/webhooks/{id}/ping")
@roles()
@spec(status=202, body=obj(), response=obj("event_id", "delivery_id", "enabled", event_id=ANY, delivery_id=ROW_ID,
                                          enabled=BOOL))
async def ping(request: web.Request) -> web.Response:
    """Queue a `webhook.ping` event for this webhook only (a disabled webhook gets it once enabled again)."""
    return ok(await ping_webhook(request.app, await _webhook(request)), status=202)


async def ping_webhook(app: web.Application, row: sqlite3.Row) -> dict[str, Any]:
    """Queue a `webhook.ping` delivery for this webhook only."""
    clock = app[CLOCK]
    now = clock.now()
    expires = iso(now + timedelta(seconds=app[CONFIG].webhooks.retry_window_s))
    async with app[DB].transaction() as tx:
        event_id = await add_event(tx, EventType.WEBHOOK_PING, {"webhook": {"id": row["id"], "url": row["url"]}})
        # Not a domain event: marked published so the relay leaves it alone; the fan-out skips its type.
        cur = await tx.execute("UPDATE events SET published_at = ? WHERE id = ? RETURNING seq", (iso(now), event_id))
        seq_row = await cur.fetchone()
        assert seq_row is not None
        cur = await tx.execute(
            "INSERT INTO webhook_deliveries (webhook_id, event_seq, next_attempt_at, expires_at) VALUES (?, ?, ?, ?)",
            (row["id"], seq_row[0], iso(now), expires),
        )
        delivery_id = cur.lastrowid
    _poke(app)
    return {"event_id": event_id, "delivery_id": delivery_id, "enabled": bool(row["enabled"])}
