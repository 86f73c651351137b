"""Pure translations between Brightspace (Valence) JSON and the appliance's records (no I/O).

Brightspace sends ids as numbers, but proxies and older versions send some as strings: both become text.
Anything else (a missing id, an object where a name belongs) raises `BadAnswer` naming the field, so a
broken upstream fails the run with a clear error instead of writing half-read rows.
"""

from __future__ import annotations

from typing import Any

from appliance.connectors.errors import Rejected
from appliance.connectors.records import CourseRecord, EnrollmentRecord, ExternalUser, MilestoneRecord

COURSE_OFFERING_TYPE = 3  # org unit type id of a course offering in every Brightspace
LEARNER_ROLE_NAMES = ("learner", "student")


class BadAnswer(Rejected):
    """The upstream answered something that is not what its API documents (shape, type, size, paging)."""

    def __init__(self, message: str, status: int = 200, body: Any = None) -> None:
        super().__init__(status, body if body is not None else message, f"bad answer from Brightspace: {message}")


def ident(value: Any, what: str) -> str:
    """An id as text: an integer, or a string of one (what some proxies and versions send)."""
    if isinstance(value, bool):
        raise BadAnswer(f"{what} is a boolean, not an id")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip() and len(value) <= 64:
        return value.strip()
    raise BadAnswer(f"{what} is missing or not an id ({type(value).__name__})")


def text(value: Any, what: str) -> str | None:
    """Optional text: None stays None, numbers become text, anything else is an error."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise BadAnswer(f"{what} is not text ({type(value).__name__})")


def number(value: Any, what: str) -> float | None:
    """Optional number; a numeric string is accepted, other types are an error."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BadAnswer(f"{what} is a boolean, not a number")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise BadAnswer(f"{what} is not a number ({value[:20]!r})") from None
    raise BadAnswer(f"{what} is not a number ({type(value).__name__})")


def obj(value: Any, what: str) -> dict[str, Any]:
    """A JSON object, or an error naming what was expected."""
    if not isinstance(value, dict):
        raise BadAnswer(f"{what} is not an object ({type(value).__name__})")
    return value


# ---- paging ----------------------------------------------------------------------------------------
def paged_result_set(data: Any, what: str) -> tuple[list[Any], str | None]:
    """A PagedResultSet → (items, bookmark of the next page or None when HasMoreItems is false)."""
    page = obj(data, what)
    items, info = page.get("Items"), obj(page.get("PagingInfo"), f"{what}.PagingInfo")
    if not isinstance(items, list):
        raise BadAnswer(f"{what}.Items is not a list")
    more = info.get("HasMoreItems")
    if not isinstance(more, bool):
        raise BadAnswer(f"{what}.PagingInfo.HasMoreItems is not a boolean")
    if not more:
        return items, None
    return items, ident(info.get("Bookmark"), f"{what}.PagingInfo.Bookmark")


def object_list_page(data: Any, what: str) -> tuple[list[Any], str | None]:
    """An ObjectListPage → (objects, absolute URL of the next page or None)."""
    page = obj(data, what)
    objects, nxt = page.get("Objects"), page.get("Next")
    if not isinstance(objects, list):
        raise BadAnswer(f"{what}.Objects is not a list")
    if nxt is not None and (not isinstance(nxt, str) or not nxt):
        raise BadAnswer(f"{what}.Next is not a URL")
    return objects, nxt or None


def pick_versions(data: Any, wanted: dict[str, int]) -> dict[str, str]:
    """The newest supported `major.minor` of each wanted product (by major) from GET /d2l/api/versions/."""
    if not isinstance(data, list):
        raise BadAnswer("versions is not a list")
    chosen: dict[str, str] = {}
    for entry in data:
        product = obj(entry, "versions[]")
        code = product.get("ProductCode")
        if code not in wanted:
            continue
        supported = product.get("SupportedVersions") or [product.get("LatestVersion")]
        best: tuple[int, int] | None = None
        for version in supported if isinstance(supported, list) else []:
            try:
                major, minor = (int(part) for part in str(version).split("."))
            except ValueError:
                continue
            if major == wanted[code] and (best is None or (major, minor) > best):
                best = (major, minor)
        if best is not None:
            chosen[code] = f"{best[0]}.{best[1]}"
    missing = sorted(set(wanted) - set(chosen))
    if missing:
        raise BadAnswer(f"Brightspace offers no {wanted[missing[0]]}.x version of the {missing[0]} API")
    return chosen


# ---- users -----------------------------------------------------------------------------------------
def external_user(user: Any) -> ExternalUser:
    """A UserData → ExternalUser; OrgDefinedId is where the appliance's uuid lives."""
    u = obj(user, "user")
    first = text(u.get("FirstName"), "user.FirstName") or ""
    last = text(u.get("LastName"), "user.LastName") or ""
    display = text(u.get("DisplayName"), "user.DisplayName") or f"{first} {last}".strip()
    return ExternalUser(
        external_id=ident(u.get("UserId"), "user.UserId"),
        sis_id=text(u.get("OrgDefinedId"), "user.OrgDefinedId") or None,
        login_id=text(u.get("UserName"), "user.UserName") or None,
        name=display,
        first_name=first,
        last_name=last,
        email=text(u.get("ExternalEmail"), "user.ExternalEmail") or None,
    )


def is_active(user: dict[str, Any]) -> bool:
    """Activation.IsActive of a UserData (absent means active)."""
    activation = user.get("Activation")
    return not isinstance(activation, dict) or activation.get("IsActive") is not False


def user_fields(payload: dict[str, Any]) -> dict[str, Any]:
    """The UserData fields the appliance owns, from an outbox payload."""
    first = str(payload.get("first_name") or payload.get("username") or payload["uuid"])
    return {
        "OrgDefinedId": payload["uuid"],
        "FirstName": first,
        "MiddleName": "",
        "LastName": str(payload.get("last_name") or ""),
        "ExternalEmail": payload.get("email") or None,
        "UserName": str(payload.get("username") or payload["uuid"]),
    }


def user_create_body(payload: dict[str, Any], role_id: str, *, active: bool = True) -> dict[str, Any]:
    """CreateUserData of POST /d2l/api/lp/(v)/users/."""
    return {**user_fields(payload), "RoleId": int(role_id) if role_id.isdigit() else role_id,
            "IsActive": active, "SendCreationEmail": False}


def user_update_body(payload: dict[str, Any], *, active: bool) -> dict[str, Any]:
    """UpdateUserData of PUT /d2l/api/lp/(v)/users/(userId)."""
    return {**user_fields(payload), "Activation": {"IsActive": active}}


def user_needs_update(current: dict[str, Any], payload: dict[str, Any], *, active: bool) -> bool:
    """Whether the upstream user differs from what the appliance holds (skip no-op writes)."""
    wanted = user_fields(payload)
    return is_active(current) != active or any(
        (current.get(key) or None) != (value or None) for key, value in wanted.items() if key != "MiddleName"
    )


def learner_role(roles: Any) -> str:
    """The id of the Learner (or Student) role from GET /d2l/api/lp/(v)/roles/."""
    if not isinstance(roles, list):
        raise BadAnswer("roles is not a list")
    for name in LEARNER_ROLE_NAMES:
        for role in roles:
            r = obj(role, "role")
            if str(r.get("DisplayName") or r.get("Code") or "").strip().lower() == name:
                return ident(r.get("Identifier"), "role.Identifier")
    raise BadAnswer("Brightspace has no role named Learner or Student")


# ---- courses and enrollments -----------------------------------------------------------------------
def course_record(org_unit: Any, base_url: str) -> CourseRecord:
    """A course offering (OrgUnit of the descendants route) → CourseRecord."""
    ou = obj(org_unit, "org unit")
    ou_id = ident(ou.get("Identifier"), "orgUnit.Identifier")
    name = text(ou.get("Name"), "orgUnit.Name") or ou_id
    return CourseRecord(
        external_id=ou_id,
        name=name,
        code=text(ou.get("Code"), "orgUnit.Code") or "",
        state="available",
        start_at=None,
        end_at=None,
        external_url=f"{base_url.rstrip('/')}/d2l/home/{ou_id}",
    )


def enrollment_record(item: Any, org_unit_id: str) -> EnrollmentRecord:
    """An OrgUnitUser of the classlist enrollments route → EnrollmentRecord (Brightspace has no states)."""
    user = obj(obj(item, "enrollment").get("User"), "enrollment.User")
    user_id = ident(user.get("Identifier"), "enrollment.User.Identifier")
    return EnrollmentRecord(
        external_id=f"{org_unit_id}:{user_id}",
        course_external_id=org_unit_id,
        user_external_id=user_id,
        state="active",
        total_activity_time=0,
        current_score=None,
    )


def role_of(item: Any) -> str | None:
    """Role id of an OrgUnitUser, when it says."""
    role = obj(item, "enrollment").get("Role")
    return ident(role.get("Id"), "enrollment.Role.Id") if isinstance(role, dict) and "Id" in role else None


# ---- grades ----------------------------------------------------------------------------------------
def grade_object_ids(grades: Any) -> list[str]:
    """Ids of the gradable grade objects of GET /d2l/api/le/(v)/(orgUnitId)/grades/ (not Text or Calculated)."""
    if not isinstance(grades, list):
        raise BadAnswer("grade objects is not a list")
    out = []
    for grade in grades:
        g = obj(grade, "grade object")
        if g.get("GradeType") in ("Text", "Formula", "Calculated"):
            continue
        out.append(ident(g.get("Id"), "gradeObject.Id"))
    return out


def grade_milestone(item: Any, org_unit_id: str, grade_object_id: str) -> MilestoneRecord | None:
    """One {User, GradeValue} of a grade object's values → a grade_received milestone (None if ungraded).

    The score is a percentage when the points have a denominator, as the appliance shows grades in percent.
    """
    row = obj(item, "grade value")
    user = obj(row.get("User"), "gradeValue.User")
    user_id = ident(user.get("Identifier"), "gradeValue.User.Identifier")
    value = row.get("GradeValue")
    if value is None:
        return None
    v = obj(value, "GradeValue")
    numerator = number(v.get("PointsNumerator"), "GradeValue.PointsNumerator")
    denominator = number(v.get("PointsDenominator"), "GradeValue.PointsDenominator")
    if numerator is None:
        return None
    score = round(100.0 * numerator / denominator, 4) if denominator else numerator
    return MilestoneRecord(
        external_id=f"{grade_object_id}:{user_id}",
        course_external_id=org_unit_id,
        user_external_id=user_id,
        type="grade_received",
        is_completed=True,
        score=score,
        occurred_at=text(v.get("LastModified"), "GradeValue.LastModified"),
    )
