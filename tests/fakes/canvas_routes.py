"""Route handlers of the fake Canvas (paths and shapes from lms-contracts.md §1.2–1.3)."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.fakes.canvas_state import now_iso

if TYPE_CHECKING:
    from tests.fakes.canvas import FakeCanvas

ENROLLMENT_TYPES = {
    "StudentEnrollment",
    "TeacherEnrollment",
    "TaEnrollment",
    "DesignerEnrollment",
    "ObserverEnrollment",
}
routes = web.RouteTableDef()


def fake_of(request: web.Request) -> FakeCanvas:
    """The FakeCanvas behind this app."""
    from tests.fakes.canvas import FAKE_KEY

    return request.app[FAKE_KEY]


async def body_of(request: web.Request) -> dict[str, Any]:
    """A JSON body, or a form body with Rails-style `user[name]` keys turned into nested objects."""
    if request.content_type == "application/json":
        try:
            data = await request.json()
        except json.JSONDecodeError:
            return {}
        return data if isinstance(data, dict) else {}
    nested: dict[str, Any] = {}
    for key, value in (await request.post()).items():
        parts = re.findall(r"[^\[\]]+", key)
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if parts:
            node[parts[-1]] = value
    return nested


def field_errors(obj: str, attribute: str, type_: str, message: str) -> dict[str, Any]:
    """Canvas's validation error body, keyed by object and field."""
    return {"errors": {obj: {attribute: [{"attribute": attribute, "type": type_, "message": message}]}}}


@routes.get("/api/v1/users/self")
async def users_self(request: web.Request) -> web.Response:
    """The token's owner."""
    return fake_of(request).render(request, {"id": 1, "name": "Account Admin"})


@routes.get("/api/v1/accounts/{account_id}")
async def account(request: web.Request) -> web.Response:
    """The account itself (a cheap probe)."""
    fake = fake_of(request)
    return fake.render(
        request,
        {
            "id": fake.state.account_id,
            "name": "Facility Account",
            "workflow_state": "active",
            "parent_account_id": None,
        },
    )


@routes.get("/api/v1/accounts/{account_id}/users")
async def account_users(request: web.Request) -> web.Response:
    """Users of the account, paginated; `search_term` matches name, login or SIS id."""
    fake = fake_of(request)
    term = request.query.get("search_term", "").lower()
    users = [
        u
        for u in fake.state.users.values()
        if not term
        or term in u["name"].lower()
        or term in (u["login_id"] or "").lower()
        or term in (u["sis_user_id"] or "").lower()
    ]
    return fake.page(request, users)


@routes.post("/api/v1/accounts/{account_id}/users")
async def create_user(request: web.Request) -> web.Response:
    """Create a user with a pseudonym (unique_id, sis_user_id); taken ids answer 400 like Canvas."""
    fake = fake_of(request)
    state = fake.state
    body = await body_of(request)
    user = body.get("user") or {}
    pseudonym = body.get("pseudonym") or {}
    unique_id = str(pseudonym.get("unique_id") or "").strip()
    sis = pseudonym.get("sis_user_id")
    error: dict[str, Any] | None = None
    if not unique_id:
        error = field_errors("pseudonym", "unique_id", "blank", "can't be blank")
    elif not str(user.get("name") or "").strip():
        error = field_errors("user", "name", "blank", "can't be blank")
    elif sis and state.sis_taken(str(sis)):
        error = field_errors("pseudonym", "sis_user_id", "taken", f'The SIS ID "{sis}" is already in use')
    elif state.login_taken(unique_id):
        error = field_errors(
            "pseudonym",
            "unique_id",
            "taken",
            "ID already in use for this account and authentication provider",
        )
    if error is not None:
        state.rejected_writes.append({"path": request.path, "body": body, "error": error})
        return fake.render(request, error, status=400)
    created = state.add_user(
        str(user["name"]),
        sis_user_id=str(sis) if sis else None,
        login_id=unique_id,
        email=(body.get("communication_channel") or {}).get("address"),
        short_name=user.get("short_name"),
        sortable_name=user.get("sortable_name"),
    )
    state.user_creates[str(sis or unique_id)] += 1
    return fake.render(request, created)


@routes.get("/api/v1/users/{user_ref}")
async def get_user(request: web.Request) -> web.Response:
    """One user by id or `sis_user_id:X`."""
    fake = fake_of(request)
    user = fake.state.find_user(request.match_info["user_ref"])
    return fake.not_found(request) if user is None else fake.render(request, user)


@routes.put("/api/v1/users/{user_ref}")
async def update_user(request: web.Request) -> web.Response:
    """Edit names/email, or `user[event]=suspend|unsuspend`."""
    fake = fake_of(request)
    user = fake.state.find_user(request.match_info["user_ref"])
    if user is None:
        return fake.not_found(request)
    changes = (await body_of(request)).get("user") or {}
    for key in ("name", "short_name", "sortable_name", "email"):
        if key in changes:
            user[key] = changes[key]
    event = changes.get("event")
    if event in ("suspend", "unsuspend"):
        user["workflow_state"] = "suspended" if event == "suspend" else "registered"
    elif event is not None:
        return fake.render(
            request, field_errors("user", "event", "inclusion", "is not included in the list"), status=400
        )
    fake.state.user_updates[str(user["sis_user_id"])] += 1
    return fake.render(request, user)


@routes.get("/api/v1/users/{user_ref}/logins")
async def user_logins(request: web.Request) -> web.Response:
    """Pseudonyms of one user."""
    fake = fake_of(request)
    user = fake.state.find_user(request.match_info["user_ref"])
    if user is None:
        return fake.not_found(request)
    return fake.page(request, [p for p in fake.state.logins.values() if p["user_id"] == user["id"]])


@routes.get("/api/v1/users/{user_ref}/enrollments")
async def user_enrollments(request: web.Request) -> web.Response:
    """Enrollments of one user."""
    fake = fake_of(request)
    user = fake.state.find_user(request.match_info["user_ref"])
    if user is None:
        return fake.not_found(request)
    return fake.page(
        request,
        [
            e
            for e in fake.state.enrollments.values()
            if e["user_id"] == user["id"] and e["enrollment_state"] != "deleted"
        ],
    )


@routes.get("/api/v1/accounts/{account_id}/courses")
async def account_courses(request: web.Request) -> web.Response:
    """Courses of the account, paginated; `state[]` filters on workflow_state."""
    fake = fake_of(request)
    states = request.query.getall("state[]", [])
    return fake.page(
        request, [c for c in fake.state.courses.values() if not states or c["workflow_state"] in states]
    )


def course_or_none(request: web.Request) -> dict[str, Any] | None:
    """The course in the path, if it exists."""
    ref = request.match_info["course_id"]
    return fake_of(request).state.courses.get(int(ref)) if ref.isdigit() else None


@routes.get("/api/v1/courses/{course_id}")
async def get_course(request: web.Request) -> web.Response:
    """One course."""
    fake = fake_of(request)
    course = course_or_none(request)
    return fake.not_found(request) if course is None else fake.render(request, course)


@routes.get("/api/v1/courses/{course_id}/enrollments")
async def course_enrollments(request: web.Request) -> web.Response:
    """Enrollments of a course; filters `type[]`, `state[]`, `user_id` (id or sis_user_id:X)."""
    fake = fake_of(request)
    course = course_or_none(request)
    if course is None:
        return fake.not_found(request)
    types = request.query.getall("type[]", [])
    states = request.query.getall("state[]", ["active", "invited"])
    user_ref = request.query.get("user_id")
    user_id = None
    if user_ref is not None:
        user = fake.state.find_user(user_ref)
        if user is None:
            return fake.page(request, [])
        user_id = user["id"]
    items = [
        e
        for e in fake.state.enrollments.values()
        if e["course_id"] == course["id"]
        and (not types or e["type"] in types)
        and e["enrollment_state"] in states
        and (user_id is None or e["user_id"] == user_id)
    ]
    return fake.page(request, items)


@routes.post("/api/v1/courses/{course_id}/enrollments")
async def create_enrollment(request: web.Request) -> web.Response:
    """Enroll a user (`enrollment[user_id]` may be `sis_user_id:X`); an existing live one is returned."""
    fake = fake_of(request)
    course = course_or_none(request)
    if course is None:
        return fake.not_found(request)
    data = (await body_of(request)).get("enrollment") or {}
    type_ = data.get("type", "StudentEnrollment")
    if type_ not in ENROLLMENT_TYPES:
        return fake.render(
            request, field_errors("enrollment", "type", "inclusion", "invalid type"), status=400
        )
    user = fake.state.find_user(str(data.get("user_id", "")))
    if user is None:
        return fake.not_found(request)
    before = len(fake.state.enrollments)
    enrollment = fake.state.enroll(
        course["id"], user["id"], type_=type_, state=data.get("enrollment_state", "active")
    )
    if len(fake.state.enrollments) > before:
        fake.state.enrollment_creates[(course["id"], user["id"])] += 1
    return fake.render(request, enrollment)


@routes.delete("/api/v1/courses/{course_id}/enrollments/{enrollment_id}")
async def delete_enrollment(request: web.Request) -> web.Response:
    """End an enrollment: `task=conclude|delete|inactivate|deactivate` (default conclude)."""
    fake = fake_of(request)
    course = course_or_none(request)
    ref = request.match_info["enrollment_id"]
    enrollment = fake.state.enrollments.get(int(ref)) if ref.isdigit() else None
    if course is None or enrollment is None or enrollment["course_id"] != course["id"]:
        return fake.not_found(request)
    task = request.query.get("task", "conclude")
    new_state = {
        "conclude": "completed",
        "delete": "deleted",
        "inactivate": "inactive",
        "deactivate": "inactive",
    }.get(task)
    if new_state is None:
        return fake.render(request, {"errors": [{"message": f"{task} is not a valid task"}]}, status=400)
    if enrollment["enrollment_state"] != new_state:
        fake.state.enrollment_deletes[(course["id"], enrollment["user_id"])] += 1
    enrollment["enrollment_state"] = new_state
    enrollment["updated_at"] = now_iso()
    return fake.render(request, enrollment)


@routes.get("/api/v1/courses/{course_id}/assignments")
async def assignments(request: web.Request) -> web.Response:
    """Assignments of a course."""
    fake = fake_of(request)
    course = course_or_none(request)
    if course is None:
        return fake.not_found(request)
    return fake.page(request, [a for a in fake.state.assignments.values() if a["course_id"] == course["id"]])


@routes.get("/api/v1/courses/{course_id}/students/submissions")
async def student_submissions(request: web.Request) -> web.Response:
    """Submissions of many students; `student_ids[]=all` required, `submitted_since` filters."""
    fake = fake_of(request)
    course = course_or_none(request)
    if course is None:
        return fake.not_found(request)
    students = request.query.getall("student_ids[]", [])
    if not students:
        return fake.render(request, {"errors": [{"message": "student_ids is required"}]}, status=400)
    since = request.query.get("submitted_since")
    wanted = None if "all" in students else {int(s) for s in students if s.isdigit()}
    items = [
        s
        for s in fake.state.submissions.values()
        if s["course_id"] == course["id"]
        and (wanted is None or s["user_id"] in wanted)
        and (since is None or (s["submitted_at"] or "") >= since or (s["graded_at"] or "") >= since)
    ]
    return fake.page(request, items)


@routes.get("/api/v1/courses/{course_id}/analytics/users/{student_id}/activity")
async def user_activity(request: web.Request) -> web.Response:
    """Page views by hour bucket and participations of one student."""
    fake = fake_of(request)
    course = course_or_none(request)
    student = request.match_info["student_id"]
    if course is None or not student.isdigit():
        return fake.not_found(request)
    data = fake.state.activity.get((course["id"], int(student)))
    if data is None:
        return fake.not_found(request)
    return fake.render(request, data)


def add_routes(app: web.Application) -> None:
    """Mount every route on the fake's app."""
    app.add_routes(routes)
