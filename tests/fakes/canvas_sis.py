"""SIS imports of the fake Canvas: POST accounts/:id/sis_imports with a users.csv or an enrollments.csv
(told apart by their header, as Canvas does), then poll its progress.

Canvas upserts by SIS id (`user_id` column): an existing SIS id is updated, never duplicated, so a
re-import after a crash is harmless. Enrollment rows name the course by its SIS id and the user by SIS
user id, and are keyed by course, user and role: importing one twice changes nothing. `batch_mode` (which
would delete everyone absent from the file)
is refused here because the appliance must never send it.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from aiohttp import web

routes = web.RouteTableDef()
REQUIRED = ("user_id", "login_id", "status")


def _fake(request: web.Request) -> Any:
    from tests.fakes.canvas import FAKE_KEY

    return request.app[FAKE_KEY]


def apply_users_csv(state: Any, text: str) -> tuple[int, list[list[str]]]:
    """Upsert every row; returns (rows processed, [[file, message], …] like Canvas's processing_errors)."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        return 0, [["users.csv", f"missing column {missing[0]}"]]
    done, errors = 0, []
    for row in reader:
        sis, login = row["user_id"].strip(), row["login_id"].strip()
        if not sis or not login:
            errors.append(["users.csv", f"row {done + len(errors) + 2}: user_id and login_id are required"])
            continue
        name = row.get("full_name") or f"{row.get('first_name', '')} {row.get('last_name', '')}".strip() or login
        user = state.find_user(f"sis_user_id:{sis}")
        if user is None:
            if state.login_taken(login):
                errors.append(["users.csv", f"login {login} is already in use by another user"])
                continue
            user = state.add_user(
                name,
                sis_user_id=sis,
                login_id=login,
                email=row.get("email") or None,
                sortable_name=row.get("sortable_name") or None,
                short_name=row.get("short_name") or None,
            )
            state.user_creates[sis] += 1
        else:
            user["name"] = name
            if row.get("sortable_name"):
                user["sortable_name"] = row["sortable_name"]
            state.user_updates[sis] += 1
        user["workflow_state"] = "suspended" if row["status"] == "suspended" else "registered"
        done += 1
    return done, errors


ENROLLMENT_COLUMNS = ("course_id", "user_id", "role", "status")
ROLES = {"student": "StudentEnrollment", "teacher": "TeacherEnrollment", "ta": "TaEnrollment"}


def apply_enrollments_csv(state: Any, text: str) -> tuple[int, list[list[str]]]:
    """Create, keep or end enrollments; returns (rows processed, processing errors)."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ENROLLMENT_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        return 0, [["enrollments.csv", f"missing column {missing[0]}"]]
    by_sis = {c["sis_course_id"]: c for c in state.courses.values() if c.get("sis_course_id")}
    done, errors = 0, []
    for row in reader:
        course = by_sis.get(row["course_id"].strip())
        user = state.find_user(f"sis_user_id:{row['user_id'].strip()}")
        type_ = ROLES.get(row["role"].strip())
        if course is None or user is None or type_ is None:
            what = "course" if course is None else "user" if user is None else "role"
            errors.append(["enrollments.csv", f"{what} not found for enrollment {row['course_id']}/{row['user_id']}"])
            continue
        if row["status"].strip() == "active":
            before = len(state.enrollments)
            state.enroll(course["id"], user["id"], type_=type_)
            if len(state.enrollments) > before:
                state.enrollment_creates[(course["id"], user["id"])] += 1
        else:
            for enrollment in state.enrollments.values():
                if (enrollment["course_id"], enrollment["user_id"]) == (course["id"], user["id"]):
                    enrollment["enrollment_state"] = "deleted"
        done += 1
    return done, errors


@routes.post("/api/v1/accounts/{account_id}/sis_imports")
async def create_import(request: web.Request) -> web.Response:
    """Accept a CSV body (`import_type=instructure_csv`, `extension=csv`) and process it."""
    fake = _fake(request)
    if request.query.get("import_type", "instructure_csv") != "instructure_csv":
        return fake.render(request, {"errors": [{"message": "unsupported import_type"}]}, status=400)
    if request.query.get("batch_mode") in ("1", "true"):
        return fake.render(request, {"errors": [{"message": "batch_mode is not allowed here"}]}, status=400)
    text = (await request.read()).decode("utf-8-sig", "replace")
    header = text.split("\n", 1)[0]
    if "course_id" in header.split(","):
        processed, errors = apply_enrollments_csv(fake.state, text)
        counts = {"enrollments": processed}
    else:
        processed, errors = apply_users_csv(fake.state, text)
        counts = {"users": processed}
    import_id = fake.state.next_id()
    record = {
        "id": import_id,
        "workflow_state": "created",
        "progress": 0,
        "created_at": "",
        "ended_at": None,
        "data": {"import_type": "instructure_csv", "counts": counts},
        "processing_errors": errors,
        "processing_warnings": [],
    }
    fake.sis_imports[import_id] = record
    fake.sis_import_posts += 1
    return fake.render(request, record)


@routes.get("/api/v1/accounts/{account_id}/sis_imports/{import_id}")
async def get_import(request: web.Request) -> web.Response:
    """Progress of an import: `created` on the first look, then `imported` (or `imported_with_messages`)."""
    fake = _fake(request)
    raw = request.match_info["import_id"]
    record = fake.sis_imports.get(int(raw)) if raw.isdigit() else None
    if record is None:
        return fake.not_found(request)
    if record["workflow_state"] == "created":
        record["workflow_state"] = "importing"
        record["progress"] = 50
    else:
        record["workflow_state"] = "imported_with_messages" if record["processing_errors"] else "imported"
        record["progress"] = 100
    return fake.render(request, record)
