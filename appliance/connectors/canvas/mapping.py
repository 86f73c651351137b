"""Pure translations between Canvas objects and the appliance's records (no I/O)."""

from __future__ import annotations

import csv
import io
from typing import Any

from appliance.connectors.errors import Malformed
from appliance.connectors.payload import opt_float, opt_int, opt_text, text_id
from appliance.connectors.records import CourseRecord, EnrollmentRecord, ExternalUser, MilestoneRecord

ENROLLMENT_STATES = {
    "active": "active",
    "invited": "active",
    "creation_pending": "active",
    "completed": "completed",
    "inactive": "dropped",
    "deleted": "dropped",
    "rejected": "dropped",
}


def sid(value: Any) -> str:
    """Canvas ids may arrive as numbers or (with canvas-string-ids) strings; keep them as text."""
    return str(value)


def split_name(user: dict[str, Any]) -> tuple[str, str]:
    """First and last name from `sortable_name` ("Last, First"), falling back to `name`."""
    sortable = str(user.get("sortable_name") or "")
    if ", " in sortable:
        last, first = sortable.split(", ", 1)
        return first.strip(), last.strip()
    parts = str(user.get("name") or "").strip().split(" ", 1)
    return (parts[0], parts[1]) if len(parts) == 2 else (parts[0] if parts else "", "")


def external_user(user: dict[str, Any]) -> ExternalUser:
    """A Canvas user → ExternalUser."""
    external_id = text_id(user, "id", "Canvas user")
    first, last = split_name(user)
    return ExternalUser(
        external_id=external_id,
        sis_id=opt_text(user.get("sis_user_id")),
        login_id=opt_text(user.get("login_id")),
        name=opt_text(user.get("name")) or "",
        first_name=first,
        last_name=last,
        email=opt_text(user.get("email")),
    )


def display_name(payload: dict[str, Any]) -> str:
    """Full name of an appliance user payload, never empty (Canvas requires a name)."""
    full = f"{payload.get('first_name') or ''} {payload.get('last_name') or ''}".strip()
    return full or str(payload.get("username") or payload["uuid"])


def user_create_body(payload: dict[str, Any]) -> dict[str, Any]:
    """Outbox payload of a learner → POST accounts/:id/users body; uuid is the SIS and login id."""
    body: dict[str, Any] = {
        "user": {
            "name": display_name(payload),
            "short_name": payload.get("first_name") or display_name(payload),
            "sortable_name": sortable(payload),
            "skip_registration": True,
            "terms_of_use": True,
        },
        "pseudonym": {
            "unique_id": payload["uuid"],
            "sis_user_id": payload["uuid"],
            "send_confirmation": False,
        },
        "enable_sis_reactivation": True,
    }
    if payload.get("email"):
        body["communication_channel"] = {
            "type": "email",
            "address": payload["email"],
            "skip_confirmation": True,
        }
    return body


def sortable(payload: dict[str, Any]) -> str:
    """Canvas's "Last, First"."""
    first, last = payload.get("first_name") or "", payload.get("last_name") or ""
    return f"{last}, {first}" if first and last else display_name(payload)


def user_update_body(payload: dict[str, Any]) -> dict[str, Any]:
    """Outbox payload → PUT users/:id body (names and email)."""
    user: dict[str, Any] = {
        "name": display_name(payload),
        "sortable_name": sortable(payload),
        "short_name": payload.get("first_name") or display_name(payload),
    }
    if payload.get("email"):
        user["email"] = payload["email"]
    return {"user": user}


def user_needs_update(current: dict[str, Any], payload: dict[str, Any]) -> bool:
    """Whether the upstream user differs from what the appliance holds (skip no-op writes)."""
    wanted = user_update_body(payload)["user"]
    return any(current.get(key) != value for key, value in wanted.items())


def course_record(course: dict[str, Any], base_url: str) -> CourseRecord:
    """A Canvas course → CourseRecord."""
    course_id = text_id(course, "id", "Canvas course")
    return CourseRecord(
        external_id=course_id,
        name=opt_text(course.get("name")) or opt_text(course.get("course_code")) or course_id,
        code=opt_text(course.get("course_code")) or "",
        state=opt_text(course.get("workflow_state")) or "available",
        start_at=opt_text(course.get("start_at")),
        end_at=opt_text(course.get("end_at")),
        external_url=f"{base_url.rstrip('/')}/courses/{course_id}",
    )


def enrollment_record(enrollment: dict[str, Any]) -> EnrollmentRecord:
    """A Canvas enrollment → EnrollmentRecord with the appliance's state vocabulary."""
    grades = enrollment.get("grades") if isinstance(enrollment, dict) else None
    return EnrollmentRecord(
        external_id=text_id(enrollment, "id", "Canvas enrollment"),
        course_external_id=text_id(enrollment, "course_id", "Canvas enrollment"),
        user_external_id=text_id(enrollment, "user_id", "Canvas enrollment"),
        state=ENROLLMENT_STATES.get(str(enrollment.get("enrollment_state")), "active"),
        total_activity_time=max(0, opt_int(enrollment.get("total_activity_time")) or 0),
        current_score=opt_float(grades.get("current_score")) if isinstance(grades, dict) else None,
    )


def milestones(submission: dict[str, Any], course_external_id: str) -> list[MilestoneRecord]:
    """A submission → an assignment_submission milestone, plus grade_received once graded."""
    if not isinstance(submission, dict):
        raise Malformed(f"Canvas submission is not an object: {str(submission)[:80]}")
    state = submission.get("workflow_state")
    if state == "unsubmitted" and submission.get("score") is None:
        return []
    user_id = text_id(submission, "user_id", "Canvas submission")
    base = text_id(submission, "id", "Canvas submission")
    records = [
        MilestoneRecord(
            external_id=base,
            course_external_id=course_external_id,
            user_external_id=user_id,
            type="assignment_submission",
            is_completed=state in ("submitted", "graded", "pending_review"),
            score=None,
            occurred_at=opt_text(submission.get("submitted_at")),
        )
    ]
    if state == "graded" or submission.get("score") is not None:
        records.append(
            MilestoneRecord(
                external_id=base,
                course_external_id=course_external_id,
                user_external_id=user_id,
                type="grade_received",
                is_completed=True,
                score=opt_float(submission.get("score")),
                occurred_at=opt_text(submission.get("graded_at")) or opt_text(submission.get("submitted_at")),
            )
        )
    return records


def activity_totals(data: Any) -> tuple[int, int]:
    """Analytics user activity (bare object or canvasapi's one-element list) → (views, participations)."""
    if isinstance(data, list):
        data = data[0] if data else {}
    if not isinstance(data, dict):
        return 0, 0
    views = data.get("page_views") or {}
    views_total = sum(int(v) for v in views.values() if isinstance(v, int | float)) if isinstance(views, dict) else 0
    participations = data.get("participations") or []
    return views_total, len(participations) if isinstance(participations, list) else 0


SIS_USER_COLUMNS = ("user_id", "login_id", "first_name", "last_name", "full_name", "sortable_name", "short_name",
                    "email", "status")


def users_csv(users: list[tuple[dict[str, Any], bool]]) -> str:
    """users.csv of a SIS import: (payload, deactivated) pairs; SIS and login id are the appliance uuid."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SIS_USER_COLUMNS)
    for payload, deactivated in users:
        writer.writerow([payload["uuid"], payload["uuid"], payload.get("first_name") or "",
                         payload.get("last_name") or "", display_name(payload), sortable(payload),
                         payload.get("first_name") or display_name(payload), payload.get("email") or "",
                         "suspended" if deactivated else "active"])
    return out.getvalue()


SIS_ENROLLMENT_COLUMNS = ("course_id", "user_id", "role", "status")


def enrollments_csv(rows: list[tuple[str, str]]) -> str:
    """enrollments.csv of a SIS import: (SIS course id, appliance uuid = SIS user id) → active student rows."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SIS_ENROLLMENT_COLUMNS)
    for course_sis_id, uuid in rows:
        writer.writerow([course_sis_id, uuid, "student", "active"])
    return out.getvalue()
