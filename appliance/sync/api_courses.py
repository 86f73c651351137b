"""Courses, enrollments and progress: read API scoped by role and facility, and enrollment changes via the outbox."""

from __future__ import annotations

import sqlite3
from typing import Any

from aiohttp import web

from appliance.core.errors import ApiError, bad_request, not_found, unavailable
from appliance.db.database import Database
from appliance.db.outbox import OutboxTopic, add_outbox
from appliance.keys import DB
from appliance.sync.keys import ENGINE
from appliance.web.openapi import ID as ROW_ID
from appliance.web.openapi import INT, NUM, PAGE_QUERY, STR, TIME, arr, nullable, obj, spec
from appliance.web.policy import Principal, Role, can_access_facility, principal, require_facility, roles, signed_in
from appliance.web.responses import ok, page_params, paginated, read_json

routes = web.RouteTableDef()
COURSE_COLUMNS = (
    "c.id, c.provider_id, c.external_id, c.name, c.code, c.state, c.external_url, c.start_at,"
    " c.end_at, c.total_milestones, c.updated_at"
)
COURSE_SCHEMA = obj("id", "provider_id", "name", id=ROW_ID, provider_id=ROW_ID, external_id=nullable(STR),
                    name=STR, code=nullable(STR), state=nullable(STR), external_url=nullable(STR),
                    start_at=nullable(TIME), end_at=nullable(TIME), total_milestones=nullable(INT),
                    updated_at=nullable(TIME), active_enrollments=INT)
"""A course as the API shows it (active_enrollments on the single course)."""
ENROLLMENT_BODY = obj("user_id", user_id=ROW_ID)
ENROLLMENT_ANSWER = obj("id", "state", "changed", id=ROW_ID, state={"enum": ["active", "dropped"]},
                        changed={"type": "boolean"})


def path_int(request: web.Request, name: str, what: str) -> int:
    """A numeric path parameter (404 otherwise)."""
    raw = request.match_info[name]
    if not raw.isdigit() or len(raw) > 12:
        raise not_found(f"no such {what}")
    return int(raw)


def scope_sql(p: Principal) -> tuple[str, list[Any]]:
    """SQL condition on `c`/`pr` limiting courses to what the caller may see."""
    if p.role is Role.SYSTEM_ADMIN:
        return "1", []
    if p.role is Role.LEARNER:
        return "EXISTS (SELECT 1 FROM enrollments e WHERE e.course_id = c.id AND e.user_id = ?)", [p.user_id]
    marks = ",".join("?" * len(p.facility_ids)) or "NULL"
    return f"(pr.facility_id IS NULL OR pr.facility_id IN ({marks}))", sorted(p.facility_ids)


@routes.get("/api/v1/courses")
@signed_in
@spec(query=PAGE_QUERY, response=arr(COURSE_SCHEMA))
async def list_courses(request: web.Request) -> web.Response:
    """Courses the caller may see (a learner: the ones they are enrolled in)."""
    p = principal(request)
    page = page_params(request)
    where, params = scope_sql(p)
    db = request.app[DB]
    base = f"FROM courses c JOIN providers pr ON pr.id = c.provider_id WHERE pr.state != 'archived' AND {where}"
    total = await db.fetchval(f"SELECT COUNT(*) {base}", params)
    rows = await db.fetchall(
        f"SELECT {COURSE_COLUMNS} {base} ORDER BY c.name, c.id LIMIT ? OFFSET ?", (*params, page.limit, page.offset)
    )
    return paginated([dict(r) for r in rows], page, int(total or 0))


async def visible_course(request: web.Request, p: Principal) -> sqlite3.Row:
    """The course in the path, if the caller may see it."""
    where, params = scope_sql(p)
    row = await request.app[DB].fetchone(
        f"SELECT {COURSE_COLUMNS}, pr.facility_id AS provider_facility FROM courses c JOIN providers pr"
        f" ON pr.id = c.provider_id WHERE c.id = ? AND {where}",
        (path_int(request, "id", "course"), *params),
    )
    if row is None:
        raise not_found("no such course")
    return row


@routes.get("/api/v1/courses/{id}")
@signed_in
@spec(response={**COURSE_SCHEMA, "required": [*COURSE_SCHEMA["required"], "active_enrollments"]})
async def get_course(request: web.Request) -> web.Response:
    """One course with its enrollment count."""
    row = await visible_course(request, principal(request))
    count = await request.app[DB].fetchval(
        "SELECT COUNT(*) FROM enrollments WHERE course_id = ? AND state = 'active'", (row["id"],)
    )
    data = {k: v for k, v in dict(row).items() if k != "provider_facility"}
    return ok({**data, "active_enrollments": count})


async def target_user(request: web.Request, p: Principal, body: dict[str, Any]) -> sqlite3.Row:
    """The `user_id` of an enrollment change, which must be in the caller's facilities."""
    user_id = body.get("user_id")
    if isinstance(user_id, bool) or not isinstance(user_id, int):
        raise bad_request("invalid_field", "user_id: must be an integer", {"field": "user_id"})
    user = await request.app[DB].fetchone("SELECT id, uuid, facility_id FROM users WHERE id = ?", (user_id,))
    if user is None:
        raise bad_request("invalid_field", "user_id: no such user", {"field": "user_id"})
    require_facility(p, user["facility_id"])
    return user


def storage_error(exc: sqlite3.OperationalError) -> ApiError:
    """A write the database refused (full disk, read-only): nothing was changed."""
    return unavailable(f"the change was not saved: {exc}", 30, code="storage_unavailable")


async def change_enrollment(request: web.Request, *, add: bool) -> web.Response:
    """Add or drop in one transaction with its outbox row, so neither exists without the other."""
    p = principal(request)
    course = await visible_course(request, p)
    if course["provider_facility"] is not None:
        require_facility(p, course["provider_facility"])
    body = await read_json(request)
    user = await target_user(request, p, body)
    db = request.app[DB]
    topic = OutboxTopic.ENROLLMENT_ADDED if add else OutboxTopic.ENROLLMENT_DROPPED
    try:
        async with db.transaction() as tx:
            cur = await tx.execute(
                "SELECT id, state FROM enrollments WHERE user_id = ? AND course_id = ?", (user["id"], course["id"])
            )
            existing = await cur.fetchone()
            if add and existing is not None and existing["state"] == "active":
                return ok({"id": existing["id"], "state": "active", "changed": False})
            if not add and (existing is None or existing["state"] == "dropped"):
                if existing is None:
                    raise not_found("the learner is not enrolled in this course")
                return ok({"id": existing["id"], "state": "dropped", "changed": False})
            if existing is None:
                cur = await tx.execute(
                    "INSERT INTO enrollments (user_id, course_id, state, source) VALUES (?, ?, 'active', 'local')",
                    (user["id"], course["id"]),
                )
                enrollment_id = cur.lastrowid
            else:
                enrollment_id = existing["id"]
                await tx.execute(
                    "UPDATE enrollments SET state = ?, source = 'local', updated_at ="
                    " strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?",
                    ("active" if add else "dropped", enrollment_id),
                )
            await add_outbox(
                tx,
                topic,
                user["uuid"],
                {
                    "enrollment_id": enrollment_id,
                    "user_id": user["id"],
                    "user_uuid": user["uuid"],
                    "course_id": course["id"],
                    "course_external_id": course["external_id"],
                    "provider_id": course["provider_id"],
                },
            )
    except sqlite3.OperationalError as exc:
        raise storage_error(exc) from None
    engine = request.app.get(ENGINE)
    if engine is not None:
        engine.relay.wake.set()
    state = "active" if add else "dropped"
    return ok({"id": enrollment_id, "state": state, "changed": True}, status=201 if add else 200)


@routes.post("/api/v1/courses/{id}/enrollments")
@roles(Role.FACILITY_ADMIN, Role.DEPARTMENT_ADMIN, facility_scoped=True)
@spec(status=201, body=ENROLLMENT_BODY, response=ENROLLMENT_ANSWER)
async def add_enrollment(request: web.Request) -> web.Response:
    """Enroll a learner: `{"user_id": N}`; pushed upstream by the sync engine."""
    return await change_enrollment(request, add=True)


@routes.delete("/api/v1/courses/{id}/enrollments")
@roles(Role.FACILITY_ADMIN, Role.DEPARTMENT_ADMIN, facility_scoped=True)
@spec(body=ENROLLMENT_BODY, response=ENROLLMENT_ANSWER)
async def drop_enrollment(request: web.Request) -> web.Response:
    """Drop a learner: `{"user_id": N}`; pushed upstream by the sync engine."""
    return await change_enrollment(request, add=False)


async def visible_user(request: web.Request, p: Principal) -> int:
    """The user in the path: yourself, or someone in your facilities if you are an admin."""
    user_id = path_int(request, "id", "user")
    if p.role is Role.LEARNER:
        if user_id != p.user_id:
            raise not_found("no such user")
        return user_id
    facility = await request.app[DB].fetchval("SELECT facility_id FROM users WHERE id = ?", (user_id,))
    if facility is None or not can_access_facility(p, facility):
        raise not_found("no such user")
    return user_id


@routes.get("/api/v1/users/{id}/enrollments")
@signed_in
@spec(query=PAGE_QUERY, response=arr(obj("id", "course_id", "state", id=ROW_ID, course_id=ROW_ID,
                                         course_name=nullable(STR), provider_id=ROW_ID, state=STR,
                                         source=nullable(STR), external_id=nullable(STR),
                                         created_at=nullable(TIME), updated_at=nullable(TIME))))
async def user_enrollments(request: web.Request) -> web.Response:
    """A user's enrollments with their courses."""
    user_id = await visible_user(request, principal(request))
    page = page_params(request)
    db = request.app[DB]
    total = await db.fetchval("SELECT COUNT(*) FROM enrollments WHERE user_id = ?", (user_id,))
    rows = await db.fetchall(
        "SELECT e.id, e.course_id, c.name AS course_name, c.provider_id, e.state, e.source, e.external_id,"
        " e.created_at, e.updated_at FROM enrollments e JOIN courses c ON c.id = e.course_id WHERE e.user_id = ?"
        " ORDER BY e.id LIMIT ? OFFSET ?",
        (user_id, page.limit, page.offset),
    )
    return paginated([dict(r) for r in rows], page, int(total or 0))


@routes.get("/api/v1/users/{id}/progress")
@signed_in
@spec(query=PAGE_QUERY, response=arr(obj("course_id", "state", "milestones_done", "total_time_s",
                                         course_id=ROW_ID, course_name=nullable(STR), state=STR,
                                         total_milestones=nullable(INT), external_url=nullable(STR),
                                         milestones_done=INT, submissions=INT, grade=nullable({}),
                                         total_time_s=NUM)))
async def user_progress(request: web.Request) -> web.Response:
    """Per course: milestones completed, grade, total time spent."""
    user_id = await visible_user(request, principal(request))
    page = page_params(request)
    db = request.app[DB]
    total = await db.fetchval("SELECT COUNT(*) FROM enrollments WHERE user_id = ?", (user_id,))
    rows = await progress_rows(db, user_id, page.limit, page.offset)
    items = [{**dict(r), "total_time_s": r["total_time_s"] or 0} for r in rows]
    return paginated(items, page, int(total or 0))


async def progress_rows(db: Database, user_id: int, limit: int, offset: int) -> list[sqlite3.Row]:
    """Per enrolled course: state, submissions, grade, time spent, milestones done and expected."""
    return await db.fetchall(
        "SELECT e.course_id, c.name AS course_name, e.state, c.total_milestones, c.external_url,"
        " (SELECT COUNT(*) FROM milestones m WHERE m.user_id = e.user_id AND m.course_id = e.course_id"
        "  AND m.is_completed = 1) AS milestones_done,"
        " (SELECT COUNT(*) FROM milestones m WHERE m.user_id = e.user_id AND m.course_id = e.course_id"
        "  AND m.is_completed = 1 AND m.type = 'assignment_submission') AS submissions,"
        " (SELECT value FROM outcomes o WHERE o.user_id = e.user_id AND o.course_id = e.course_id"
        "  AND o.type = 'grade') AS grade,"
        " (SELECT total_time FROM activities a WHERE a.user_id = e.user_id AND a.course_id = e.course_id"
        "  ORDER BY a.id DESC LIMIT 1) AS total_time_s"
        " FROM enrollments e JOIN courses c ON c.id = e.course_id WHERE e.user_id = ? ORDER BY e.id LIMIT ? OFFSET ?",
        (user_id, limit, offset),
    )
