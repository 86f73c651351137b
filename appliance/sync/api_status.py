"""Sync status per provider, dead letters and their retry, recent runs."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from typing import Any

from aiohttp import web

from appliance.core.errors import bad_request, conflict, not_found
from appliance.keys import CLOCK, DB
from appliance.sync import store
from appliance.web.openapi import ANY, INT, NUM, PAGE_QUERY, STR, TIME, arr, nullable, obj, spec
from appliance.web.openapi import ID as ROW_ID
from appliance.web.policy import Principal, Role, can_access_facility, principal, roles
from appliance.web.responses import ok, page_params, paginated

routes = web.RouteTableDef()
ADMINS = (Role.FACILITY_ADMIN, Role.DEPARTMENT_ADMIN)


def visible(p: Principal, facility_id: int | None) -> bool:
    """Global providers are visible to every admin; facility ones to admins of that facility."""
    return facility_id is None or can_access_facility(p, facility_id)


def age_seconds(now: datetime, stamp: str | None) -> float | None:
    """Seconds since an ISO timestamp."""
    if not stamp:
        return None
    return max(0.0, (now - datetime.fromisoformat(stamp.replace("Z", "+00:00"))).total_seconds())


@routes.get("/api/v1/sync/status")
@roles(*ADMINS)
@spec(response=arr(obj("provider_id", "name", "type", "state", "queue_depth", "dead_letters", "last_run",
                       provider_id=ROW_ID, name=STR, type=STR, state=STR, runtime_state=nullable(STR),
                       uplink=nullable(STR), last_error=nullable(STR), last_pull_at=nullable(TIME),
                       last_push_at=nullable(TIME), queue_depth=INT, oldest_pending_age_s=nullable(NUM),
                       dead_letters=INT, last_run=nullable(obj("id", "job", "state", id=ROW_ID, job=STR,
                                                               state=STR)))))
async def status(request: web.Request) -> web.Response:
    """Per provider: state, uplink, last pull/push, queue depth, oldest pending age, dead letters."""
    out, unpublished = await provider_status(request.app, principal(request))
    return ok(out, meta={"unpublished_outbox": unpublished})


async def provider_status(app: web.Application, p: Principal) -> tuple[list[dict[str, Any]], int]:
    """The status rows of the providers this caller may see, and the outbox rows not yet relayed."""
    db = app[DB]
    now = app[CLOCK].now()
    out: list[dict[str, Any]] = []
    for row in await db.fetchall(
        f"SELECT {store.PROVIDER_COLUMNS} FROM providers WHERE state != 'archived' ORDER BY id"
    ):
        if not visible(p, row["facility_id"]):
            continue
        depth, oldest = await store.queue_depth(db, row["id"], row["outbox_floor"])
        dead = await db.fetchval(
            "SELECT COUNT(*) FROM dead_letters WHERE provider_id = ? AND state != 'resolved'", (row["id"],)
        )
        last_run = await db.fetchone(
            "SELECT id, job, state, stage, finished_at FROM sync_runs WHERE provider_id = ? ORDER BY id DESC LIMIT 1",
            (row["id"],),
        )
        out.append(
            {
                "provider_id": row["id"],
                "name": row["name"],
                "type": row["type"],
                "state": row["state"],
                "runtime_state": row["runtime_state"],
                "uplink": row["uplink"],
                "last_error": row["last_error"],
                "last_pull_at": row["last_pull_at"],
                "last_push_at": row["last_push_at"],
                "queue_depth": depth,
                "oldest_pending_age_s": age_seconds(now, oldest),
                "dead_letters": int(dead or 0),
                "last_run": dict(last_run) if last_run else None,
            }
        )
    unpublished = await db.fetchval("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
    return out, int(unpublished or 0)


@routes.get("/api/v1/sync/dead-letters")
@roles(*ADMINS)
@spec(query={**PAGE_QUERY, "state": {"enum": ["open", "retrying", "resolved", "all"]}},
      response=arr(obj("id", "provider_id", "topic", "state", id=ROW_ID, provider_id=ROW_ID, outbox_id=INT,
                       topic=STR, status_code=nullable(INT), error=nullable(STR), error_body=ANY, state=STR,
                       retries=INT, created_at=TIME, updated_at=nullable(TIME), aggregate_id=ANY)))
async def dead_letters(request: web.Request) -> web.Response:
    """Records an upstream rejected, with its error body (`?state=open|retrying|resolved`)."""
    page = page_params(request)
    items = await dead_letter_items(request.app, principal(request), request.query.get("state", "open"))
    return paginated(items[page.offset : page.offset + page.limit], page, len(items))


async def dead_letter_items(app: web.Application, p: Principal, state: str) -> list[dict[str, Any]]:
    """Dead letters in a state (open, retrying, resolved, all) of providers the caller may see."""
    if state not in ("open", "retrying", "resolved", "all"):
        raise bad_request("invalid_parameter", "state must be open, retrying, resolved or all", {"parameter": "state"})
    rows = await app[DB].fetchall(
        "SELECT d.id, d.provider_id, pr.facility_id, d.outbox_id, d.topic, d.status_code, d.error, d.error_body,"
        " d.state, d.retries, d.created_at, d.updated_at, o.aggregate_id FROM dead_letters d"
        " JOIN providers pr ON pr.id = d.provider_id JOIN outbox o ON o.id = d.outbox_id"
        " WHERE (? = 'all' OR d.state = ?) ORDER BY d.id",
        (state, state),
    )
    items = []
    for row in rows:
        if not visible(p, row["facility_id"]):
            continue
        item = {k: v for k, v in dict(row).items() if k != "facility_id"}
        if item["error_body"]:
            with contextlib.suppress(json.JSONDecodeError):
                item["error_body"] = json.loads(item["error_body"])
        items.append(item)
    return items


@routes.post("/api/v1/sync/dead-letters/{id}/retry")
@roles(*ADMINS)
@spec(status=202, body=obj(), response=obj("id", "state", id=ROW_ID, state={"const": "retrying"}))
async def retry_dead_letter(request: web.Request) -> web.Response:
    """Queue a dead letter for another push (the engine picks it up while the uplink is up)."""
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 12:
        raise not_found("no such dead letter")
    await retry_dead_letter_row(request.app, principal(request), int(raw))
    return ok({"id": int(raw), "state": "retrying"}, status=202)


async def retry_dead_letter_row(app: web.Application, p: Principal, letter_id: int) -> None:
    """Mark an open dead letter of a visible provider for another push."""
    db = app[DB]
    row = await db.fetchone(
        "SELECT d.id, d.state, pr.facility_id FROM dead_letters d JOIN providers pr"
        " ON pr.id = d.provider_id WHERE d.id = ?",
        (letter_id,),
    )
    if row is None or not visible(p, row["facility_id"]):
        raise not_found("no such dead letter")
    if row["state"] != "open":
        raise conflict(f"the dead letter is {row['state']}, not open")
    await db.execute(
        "UPDATE dead_letters SET state = 'retrying', retries = retries + 1,"
        " updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ? AND state = 'open'",
        (row["id"],),
    )


@routes.get("/api/v1/sync/runs")
@roles(*ADMINS)
@spec(query=PAGE_QUERY, response=arr(obj("id", "provider_id", "job", "state", "counts", "errors", id=ROW_ID,
                                         provider_id=ROW_ID, job={"enum": ["pull", "report"]}, trigger=STR,
                                         window_id=nullable(STR),
                                         state={"enum": ["queued", "running", "succeeded", "failed"]},
                                         stage=STR, counts={"type": "object"}, errors=arr(ANY),
                                         created_at=TIME, started_at=nullable(TIME),
                                         finished_at=nullable(TIME))))
async def runs(request: web.Request) -> web.Response:
    """Recent pull/report runs with their stage, counts and errors."""
    page = page_params(request)
    items = await recent_runs(request.app, principal(request))
    return paginated(items[page.offset : page.offset + page.limit], page, len(items))


async def recent_runs(app: web.Application, p: Principal) -> list[dict[str, Any]]:
    """The latest runs (up to 1000) of providers the caller may see, newest first."""
    rows = await app[DB].fetchall(
        "SELECT r.*, pr.facility_id FROM sync_runs r JOIN providers pr ON pr.id = r.provider_id"
        " ORDER BY r.id DESC LIMIT 1000"
    )
    items = [
        {
            **{k: v for k, v in dict(r).items() if k != "facility_id"},
            "counts": json.loads(r["counts"]),
            "errors": json.loads(r["errors"]),
        }
        for r in rows
        if visible(p, r["facility_id"])
    ]
    return items
