"""Pure translations between Kolibri's payloads (JSON and the summary-log CSV) and the neutral records."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from appliance.connectors.errors import UpstreamError
from appliance.connectors.records import ActivityRecord, CourseRecord, EnrollmentRecord, ExternalUser

KOLIBRI_USERNAME_MAX = 30
VALID_USERNAME = re.compile(r"^[A-Za-z0-9_]{1,30}$")
NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_]")
HEX_ID = re.compile(r"^[0-9a-f]{32}$")
FULL_NAME_MAX = 120
# The columns of the summary-log export the appliance reads (English labels: the export is asked in "en").
CSV_USERNAME = "Username"
CSV_CHANNEL = "Channel id"
CSV_CONTENT = "Content id"
CSV_FIRST = "Time of first interaction"
CSV_LAST = "Time of last interaction"
CSV_COMPLETED = "Time of completion"
CSV_TIME = "Time Spent (sec)"
CSV_PROGRESS = "Progress (0-1)"
CSV_REQUIRED = (CSV_USERNAME, CSV_CHANNEL, CSV_CONTENT, CSV_LAST, CSV_COMPLETED, CSV_TIME, CSV_PROGRESS)


class BadAnswer(UpstreamError):
    """Kolibri sent something the appliance cannot use (missing fields, wrong types, not JSON, too big).

    Not transient: retrying the same request gets the same answer, so the run fails with this message.
    """


def username_key(username: str) -> str:
    """The appliance's case-insensitive key of a username (NFKC, casefold, NFKC; as identity computes it,
    repeated here because connectors import no feature)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", username).strip().casefold())


def kolibri_username(username: str) -> str:
    """The Kolibri username of an appliance username: itself when Kolibri accepts it, else a stable stand-in.

    Kolibri takes only ASCII letters, digits and `_`, at most 30 characters. Any other character becomes `_`,
    the result is cut to 21 characters and `_` plus the first 8 hex digits of the SHA-256 of the username's
    case-insensitive key is appended: "jean.dupont" → "jean_dupont_" + 8 hex. Two appliance usernames never
    share a stand-in by accident, and the same username always gets the same one.
    """
    if VALID_USERNAME.match(username):
        return username
    digest = hashlib.sha256(username_key(username).encode()).hexdigest()[:8]
    base = NOT_ALLOWED.sub("_", username)[:21]
    return f"{base}_{digest}"


def full_name(payload: Mapping[str, Any]) -> str:
    """Full name of an appliance user payload, never empty (Kolibri requires one), at most 120 characters."""
    name = f"{payload.get('first_name') or ''} {payload.get('last_name') or ''}".strip()
    return (name or str(payload.get("username") or payload["uuid"]))[:FULL_NAME_MAX]


def user_create_body(payload: Mapping[str, Any], facility_id: str, password: str) -> dict[str, Any]:
    """Outbox payload of a learner → POST /api/auth/facilityuser/ body; `id_number` holds the appliance uuid."""
    return {
        "username": kolibri_username(str(payload["username"])),
        "full_name": full_name(payload),
        "password": password,
        "facility": facility_id,
        "id_number": str(payload["uuid"]),
    }


def user_needs_update(current: Mapping[str, Any], payload: Mapping[str, Any]) -> bool:
    """Whether the Kolibri user's name differs from the local learner's."""
    return str(current.get("full_name") or "") != full_name(payload)


def _text(obj: Mapping[str, Any], key: str, what: str, *, required: bool = True) -> str:
    value = obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        kind = type(value).__name__ if value is not None else "missing"
        raise BadAnswer(f"Kolibri sent a {what} whose {key!r} is {kind} ({str(value)[:40]!r}), not text")
    return value


def _id(obj: Any, what: str, key: str = "id") -> str:
    if not isinstance(obj, Mapping):
        raise BadAnswer(f"Kolibri sent a {what} that is {type(obj).__name__}, not an object")
    value = _text(obj, key, what)
    if not HEX_ID.match(value):
        raise BadAnswer(f"Kolibri sent a {what} whose {key!r} is not a 32-digit hex id: {value[:40]!r}")
    return value


def split_name(name: str) -> tuple[str, str]:
    """First and last name from Kolibri's single `full_name`: the last word is the last name."""
    parts = name.strip().rsplit(" ", 1)
    return (parts[0], parts[1]) if len(parts) == 2 else (parts[0], "")


def external_user(user: Any) -> ExternalUser:
    """A Kolibri facility user → ExternalUser (`id_number` is where a pushed learner keeps our uuid)."""
    external_id = _id(user, "user")
    username = _text(user, "username", "user")
    name = _text(user, "full_name", "user", required=False)
    id_number = _text(user, "id_number", "user", required=False)
    first, last = split_name(name)
    return ExternalUser(
        external_id=external_id,
        sis_id=id_number or None,
        login_id=username,
        name=name,
        first_name=first,
        last_name=last,
        email=None,
    )


def course_record(classroom: Any, base_url: str) -> CourseRecord:
    """A Kolibri classroom → CourseRecord (classrooms have no code, dates or states: always available)."""
    external_id = _id(classroom, "classroom")
    name = _text(classroom, "name", "classroom")
    return CourseRecord(
        external_id=external_id,
        name=name,
        code="",
        state="available",
        start_at=None,
        end_at=None,
        external_url=f"{base_url.rstrip('/')}/coach/#/{external_id}/home",
    )


def enrollment_record(membership: Any, classroom_id: str) -> EnrollmentRecord:
    """A classroom membership → EnrollmentRecord (memberships exist or not: always active)."""
    external_id = _id(membership, "membership")
    user = _id(membership, "membership", "user")
    collection = _id(membership, "membership", "collection")
    if collection != classroom_id:
        raise BadAnswer(f"Kolibri listed membership {external_id} of {collection} among those of {classroom_id}")
    return EnrollmentRecord(
        external_id=external_id,
        course_external_id=classroom_id,
        user_external_id=user,
        state="active",
        total_activity_time=0,
        current_score=None,
    )


def paged(body: Any, what: str) -> tuple[list[Any], int | None]:
    """A list answer, paged (`{"results", "total_pages"}`) or plain; returns (items, total pages or None)."""
    if isinstance(body, list):
        return body, None
    if isinstance(body, Mapping) and isinstance(body.get("results"), list):
        pages = body.get("total_pages")
        if isinstance(pages, bool) or not isinstance(pages, int) or pages < 0:
            raise BadAnswer(f"Kolibri sent a page of {what} whose 'total_pages' is {pages!r}")
        return body["results"], pages
    raise BadAnswer(f"Kolibri sent {type(body).__name__} where a list of {what} was expected")


def error_text(body: Any, default: str) -> str:
    """Kolibri's error list `[{"id", "metadata": {"field", "message"}}]` as one line."""
    if isinstance(body, list) and body:
        parts = []
        for item in body[:5]:
            if not isinstance(item, Mapping):
                continue
            meta = item.get("metadata") if isinstance(item.get("metadata"), Mapping) else {}
            assert isinstance(meta, Mapping)
            message = meta.get("message")
            field = meta.get("field")
            text = str(item.get("id") or "ERROR")
            if message:
                text += f": {message}"
            if field:
                text += f" ({field})"
            parts.append(text)
        if parts:
            return "; ".join(parts)[:500]
    if isinstance(body, Mapping) and body.get("detail"):
        return str(body["detail"])[:500]
    return default


# ---- progress: the summary-log CSV export ------------------------------------------------------------
def csv_rows(lines: Iterable[list[str]]) -> Iterator[dict[str, str]]:
    """Rows of the export keyed by the columns the appliance reads; a missing column is a BadAnswer."""
    it = iter(lines)
    header = next(it, None)
    if header is None:
        return
    header = [h.lstrip("\ufeff").strip() for h in header]
    missing = [c for c in CSV_REQUIRED if c not in header]
    if missing:
        raise BadAnswer(f"Kolibri's summary-log export lacks the column(s) {', '.join(missing)}")
    index = {c: header.index(c) for c in CSV_REQUIRED if c in header}
    if CSV_FIRST in header:
        index[CSV_FIRST] = header.index(CSV_FIRST)
    width = len(header)
    for number, row in enumerate(it, start=2):
        if not row:
            continue
        if len(row) != width:
            raise BadAnswer(f"Kolibri's summary-log export has {len(row)} fields on line {number}, not {width}")
        yield {c: row[i] for c, i in index.items()}


def timestamp(value: str, what: str) -> str | None:
    """A CSV time (ISO 8601, with or without offset; naive means UTC) → ISO UTC text with Z; "" → None."""
    value = value.strip()
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadAnswer(f"Kolibri's summary-log export has an unreadable {what}: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _number(value: str, what: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise BadAnswer(f"Kolibri's summary-log export has a non-numeric {what}: {value[:40]!r}") from None
    if number != number or number in (float("inf"), float("-inf")) or number < 0:
        raise BadAnswer(f"Kolibri's summary-log export has an impossible {what}: {value[:40]!r}")
    return number


def activity_record(row: Mapping[str, str], user_ids: Mapping[str, str]) -> ActivityRecord | None:
    """One summary-log row (a learner × a resource) → ActivityRecord; None when the learner is unknown.

    Kolibri's logs are per learner and resource, not per classroom, so `course_external_id` is empty; the
    record's id is `<channel id>:<content id>` (a resource is unique within its channel).
    """
    user = user_ids.get(row[CSV_USERNAME].casefold())
    if user is None:
        return None
    channel, content = row[CSV_CHANNEL].strip(), row[CSV_CONTENT].strip()
    if not HEX_ID.match(channel) or not HEX_ID.match(content):
        raise BadAnswer(f"Kolibri's summary-log export has a row without valid channel/content ids: {content[:40]!r}")
    progress = _number(row[CSV_PROGRESS], "progress")
    if progress > 1.0:
        raise BadAnswer(f"Kolibri's summary-log export has a progress above 1: {progress}")
    return ActivityRecord(
        external_id=resource_id(channel, content),
        course_external_id="",
        user_external_id=user,
        total_time_s=int(round(_number(row[CSV_TIME], "time spent"))),
        progress=progress,
        completed_at=timestamp(row[CSV_COMPLETED], "completion time"),
        occurred_at=timestamp(row[CSV_LAST], "last interaction time"),
    )


# ---- lessons: which resources a classroom assigns ------------------------------------------------------
def resource_id(channel_id: str, content_id: str) -> str:
    """The appliance's id of a Kolibri resource, shared by progress rows and lessons: `<channel>:<content>`."""
    return f"{channel_id}:{content_id}"


def lesson_resources(lesson: Any, classroom_id: str) -> set[str]:
    """A lesson of `GET /api/lessons/lesson/?collection=` → the ids of the resources it assigns.

    Only an active lesson counts (an inactive one is a coach's draft, hidden from learners). A resource is
    named by channel and content id, not by its content node: the same resource imported twice into a
    channel tree is one resource, as in the summary logs.
    """
    lesson_id = _id(lesson, "lesson")
    collection = lesson.get("collection")
    if collection != classroom_id:
        raise BadAnswer(f"Kolibri listed lesson {lesson_id} of {str(collection)[:40]!r} among those of {classroom_id}")
    active = lesson.get("active")
    if not isinstance(active, bool):
        raise BadAnswer(f"Kolibri sent lesson {lesson_id} whose 'active' is {type(active).__name__}, not a boolean")
    resources = lesson.get("resources")
    if resources is None:
        resources = []
    if not isinstance(resources, list):
        raise BadAnswer(f"Kolibri sent lesson {lesson_id} whose 'resources' is {type(resources).__name__}")
    found = {
        resource_id(_id(r, "lesson resource", "channel_id"), _id(r, "lesson resource", "content_id"))
        for r in resources
    }
    return found if active else set()
