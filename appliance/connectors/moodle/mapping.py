"""Pure translations between Moodle web service payloads and the appliance's records (no I/O)."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any

from appliance.connectors.errors import Malformed
from appliance.connectors.payload import opt_float, opt_int, opt_text, text_id
from appliance.connectors.records import CourseRecord, EnrollmentRecord, ExternalUser, MilestoneRecord

SITE_FORMAT = "site"
SITE_COURSE_ID = "1"
STUDENT_ROLE = "student"
STUDENT_ROLE_ID = 5  # Moodle's default "student" role id (enrol_manual_enrol_users needs the id)
COMPLETE_STATES = {1, 2}  # COMPLETION_COMPLETE, COMPLETION_COMPLETE_PASS (3 is complete-fail)
# An activity completion becomes the milestone type of its module; other modules count as submissions.
MODULE_MILESTONES = {"quiz": "quiz_submission", "forum": "discussion_post", "assign": "assignment_submission"}
USERNAME_RE = re.compile(r"[^a-z0-9_.@-]")
EMAIL_DOMAIN = "appliance.invalid"  # a reserved name: Moodle requires an email, some learners have none


def iso(timestamp: Any) -> str | None:
    """Moodle's Unix seconds → ISO 8601 UTC; 0, absent or nonsense → None."""
    seconds = opt_int(timestamp)
    if not seconds or seconds < 0 or seconds > 32503680000:  # year 3000
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def since_seconds(since: str | None) -> int:
    """The appliance's ISO cursor → Unix seconds (0 when there is none)."""
    if not since:
        return 0
    try:
        return int(datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def is_site_course(course: dict[str, Any]) -> bool:
    """The front page is course id 1 with format "site": never a real course."""
    return str(course.get("id")) == SITE_COURSE_ID or course.get("format") == SITE_FORMAT


def course_record(course: Any, base_url: str) -> CourseRecord:
    """A core_course_get_courses entry → CourseRecord."""
    course_id = text_id(course, "id", "Moodle course")
    visible = course.get("visible")
    return CourseRecord(
        external_id=course_id,
        name=opt_text(course.get("fullname")) or opt_text(course.get("displayname"))
        or opt_text(course.get("shortname")) or course_id,
        code=opt_text(course.get("shortname")) or "",
        state="unpublished" if visible is not None and opt_int(visible) == 0 else "available",
        start_at=iso(course.get("startdate")),
        end_at=iso(course.get("enddate")),
        external_url=f"{base_url.rstrip('/')}/course/view.php?id={course_id}",
    )


def external_user(user: Any) -> ExternalUser:
    """A Moodle user description (enrolled users, get_users_by_field) → ExternalUser; idnumber is the SIS id."""
    external_id = text_id(user, "id", "Moodle user")
    first, last = opt_text(user.get("firstname")) or "", opt_text(user.get("lastname")) or ""
    return ExternalUser(
        external_id=external_id,
        sis_id=opt_text(user.get("idnumber")),
        login_id=opt_text(user.get("username")),
        name=opt_text(user.get("fullname")) or f"{first} {last}".strip(),
        first_name=first,
        last_name=last,
        email=opt_text(user.get("email")),
    )


def is_student(user: dict[str, Any]) -> bool:
    """Whether an enrolled user holds the student role (no roles listed: count them, as Moodle did not say)."""
    roles = user.get("roles")
    if not isinstance(roles, list) or not roles:
        return True
    return any(isinstance(r, dict) and r.get("shortname") == STUDENT_ROLE for r in roles)


def enrollment_record(user: Any, course_external_id: str) -> EnrollmentRecord:
    """An enrolled student → EnrollmentRecord (Moodle exposes no enrolment id here: course:user is stable)."""
    user_id = text_id(user, "id", "Moodle enrolled user")
    return EnrollmentRecord(
        external_id=f"{course_external_id}:{user_id}",
        course_external_id=course_external_id,
        user_external_id=user_id,
        state="active",
        total_activity_time=0,
        current_score=None,
    )


def completion_milestones(
    data: Any, course_external_id: str, user_external_id: str, since: int
) -> list[MilestoneRecord]:
    """core_completion_get_activities_completion_status → one milestone per activity completed since."""
    statuses = data.get("statuses") if isinstance(data, dict) else None
    if not isinstance(statuses, list):
        raise Malformed("Moodle completion status has no statuses list")
    out = []
    for status in statuses:
        cmid = text_id(status, "cmid", "Moodle completion status")
        state = opt_int(status.get("state"))
        completed_at = opt_int(status.get("timecompleted")) or 0
        if state is None or state == 0 or completed_at < since:
            continue
        out.append(
            MilestoneRecord(
                external_id=f"cm{cmid}:u{user_external_id}",
                course_external_id=course_external_id,
                user_external_id=user_external_id,
                type=MODULE_MILESTONES.get(str(status.get("modname") or ""), "assignment_submission"),
                is_completed=state in COMPLETE_STATES,
                score=None,
                occurred_at=iso(completed_at),
            )
        )
    return out


def grade_milestones(data: Any, course_external_id: str, since: int) -> list[MilestoneRecord]:
    """gradereport_user_get_grade_items → a grade_received milestone per graded item (course total included)."""
    usergrades = data.get("usergrades") if isinstance(data, dict) else None
    if not isinstance(usergrades, list):
        raise Malformed("Moodle grade report has no usergrades list")
    out = []
    for usergrade in usergrades:
        user_id = text_id(usergrade, "userid", "Moodle user grade")
        items = usergrade.get("gradeitems")
        if not isinstance(items, list):
            raise Malformed(f"Moodle grades of user {user_id} have no gradeitems list")
        for item in items:
            item_id = text_id(item, "id", "Moodle grade item")
            score = opt_float(item.get("graderaw"))
            graded_at = opt_int(item.get("gradedategraded")) or 0
            if score is None or (since and graded_at and graded_at < since):
                continue
            out.append(
                MilestoneRecord(
                    external_id=f"gi{item_id}:u{user_id}",
                    course_external_id=course_external_id,
                    user_external_id=user_id,
                    type="grade_received",
                    is_completed=True,
                    score=score,
                    occurred_at=iso(graded_at),
                )
            )
    return out


def username(payload: dict[str, Any]) -> str:
    """The appliance username in Moodle's alphabet (lower case a-z 0-9 _ - . @; anything else becomes _)."""
    raw = str(payload.get("username") or payload["uuid"]).lower()
    return USERNAME_RE.sub("_", raw)[:100] or str(payload["uuid"])


def email(payload: dict[str, Any]) -> str:
    """The learner's email, or a reserved placeholder (Moodle refuses a user without one)."""
    return str(payload.get("email") or f"{username(payload)}@{EMAIL_DOMAIN}")


def names(payload: dict[str, Any]) -> tuple[str, str]:
    """First and last name, never empty (Moodle requires both)."""
    first = str(payload.get("first_name") or "").strip() or username(payload)
    last = str(payload.get("last_name") or "").strip() or "-"
    return first, last


def random_password() -> str:
    """A password nobody knows that meets Moodle's default policy (8+, digit, lower, upper, symbol)."""
    return f"{secrets.token_urlsafe(18)}aA1!"


def user_create(payload: dict[str, Any], deactivated: bool) -> dict[str, Any]:
    """core_user_create_users entry: idnumber = the appliance's uuid (what look-ups key on)."""
    first, last = names(payload)
    user: dict[str, Any] = {
        "username": username(payload),
        "auth": "manual",
        "password": random_password(),
        "firstname": first,
        "lastname": last,
        "email": email(payload),
        "idnumber": str(payload["uuid"]),
    }
    if deactivated:
        user["suspended"] = 1
    return user


def user_changes(current: dict[str, Any], payload: dict[str, Any], deactivated: bool) -> dict[str, Any]:
    """The fields of core_user_update_users that differ from what Moodle holds (empty: nothing to do)."""
    first, last = names(payload)
    wanted: dict[str, Any] = {"firstname": first, "lastname": last, "email": email(payload)}
    changes = {k: v for k, v in wanted.items() if str(current.get(k) or "") != v}
    suspended = bool(opt_int(current.get("suspended")))
    if suspended != deactivated:
        changes["suspended"] = int(deactivated)
    return changes
