"""User accounts: validation, and the write paths that keep audit log, outbox and sessions in step."""

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from appliance.auth.audit import Actor, AuditAction, record_tx
from appliance.auth.passwords import PasswordError, check_strength
from appliance.auth.sessions import Sessions, SessionState
from appliance.auth.usernames import UsernameError, username_key, validate_username
from appliance.db.events import EventType, add_event
from appliance.db.outbox import OutboxTopic, add_outbox
from appliance.web.openapi import BOOL, ID, STR, TIME, arr, nullable, obj
from appliance.web.policy import Role

USER_COLUMNS = (
    "id, uuid, username, first_name, last_name, email, doc_id, facility_id, role, must_change_password,"
    " auth_source, deactivated_at, created_at, updated_at"
)
MAX_NAME = 100
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}$")
_DOC_ID = re.compile(r"^[A-Za-z0-9._/-]{1,64}$")
_ROLES = {r.value for r in Role}
EDITABLE = ("first_name", "last_name", "email", "doc_id", "facility_id", "role", "extra_facility_ids")


class FieldError(ValueError):
    """One input field is unusable; `field` names it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


def _text(data: dict[str, Any], name: str, *, optional: bool, pattern: re.Pattern[str] | None = None) -> Any:
    value = data[name]
    if value is None or (optional and value == ""):
        if optional:
            return None
        raise FieldError(name, "is required")
    if not isinstance(value, str):
        raise FieldError(name, "must be a string")
    value = value.strip()
    if len(value) > MAX_NAME * 2 or _CONTROL.search(value) or not _utf8(value):
        raise FieldError(name, "is too long or holds control characters")
    if pattern is not None and not pattern.match(value):
        raise FieldError(name, "has an invalid format")
    return value


def is_row_id(value: Any) -> bool:
    """A JSON value usable as a row id (bool is not; SQLite integers stop at 2**63)."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value < 2**62


def _utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate_fields(data: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """Check the user fields present in data; return them cleaned (raises FieldError)."""
    out: dict[str, Any] = {}
    allowed = {"username", "password", *EDITABLE} if creating else set(EDITABLE)
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise FieldError(unknown[0], "is not a known field")
    if creating:
        for required in ("username", "role"):
            if required not in data:
                raise FieldError(required, "is required")
        if not isinstance(data["username"], str):
            raise FieldError("username", "must be a string")
        try:
            out["username"] = validate_username(data["username"])
        except UsernameError as exc:
            raise FieldError("username", str(exc)) from None
    for name in ("first_name", "last_name"):
        if name in data:
            value = _text(data, name, optional=True)
            if value is not None and len(value) > MAX_NAME:
                raise FieldError(name, f"is longer than {MAX_NAME} characters")
            out[name] = value or ""
    if "email" in data:
        out["email"] = _text(data, "email", optional=True, pattern=_EMAIL)
    if "doc_id" in data:
        out["doc_id"] = _text(data, "doc_id", optional=True, pattern=_DOC_ID)
    if "role" in data:
        if not isinstance(data["role"], str) or data["role"] not in _ROLES:
            raise FieldError("role", f"must be one of {', '.join(sorted(_ROLES))}")
        out["role"] = data["role"]
    if "facility_id" in data:
        if not is_row_id(data["facility_id"]):
            raise FieldError("facility_id", "must be a positive integer")
        out["facility_id"] = data["facility_id"]
    if "extra_facility_ids" in data:
        extra = data["extra_facility_ids"]
        if not isinstance(extra, list) or len(extra) > 1000 or not all(is_row_id(i) for i in extra):
            raise FieldError("extra_facility_ids", "must be a list of positive integers")
        out["extra_facility_ids"] = sorted(set(extra))
    if creating and data.get("password") is not None:
        if not isinstance(data["password"], str):
            raise FieldError("password", "must be a string")
        try:
            check_strength(data["password"])
        except PasswordError as exc:
            raise FieldError("password", str(exc)) from None
        out["password"] = data["password"]
    return out


USER_SCHEMA = obj(
    "id", "uuid", "username", "facility_id", "role", "must_change_password", "active",
    id=ID, uuid=STR, username=STR, first_name=nullable(STR), last_name=nullable(STR), email=nullable(STR),
    doc_id=nullable(STR), facility_id=ID, role=STR, auth_source=nullable(STR), deactivated_at=nullable(TIME),
    created_at=TIME, updated_at=nullable(TIME), must_change_password=BOOL, active=BOOL,
    extra_facility_ids=arr(ID),
)
"""An account as the API shows it (never the hash)."""


def user_json(row: Any, extra_facility_ids: list[int] | None = None) -> dict[str, Any]:
    """A users row as the API shows it (never the hash)."""
    out = {
        k: row[k]
        for k in (
            "id",
            "uuid",
            "username",
            "first_name",
            "last_name",
            "email",
            "doc_id",
            "facility_id",
            "role",
            "auth_source",
            "deactivated_at",
            "created_at",
            "updated_at",
        )
    }
    out["must_change_password"] = bool(row["must_change_password"])
    out["active"] = row["deactivated_at"] is None
    if extra_facility_ids is not None:
        out["extra_facility_ids"] = extra_facility_ids
    return out


def roster_payload(row: Any) -> dict[str, Any]:
    """What the sync relay pushes to the LMS about a learner."""
    return {
        k: row[k]
        for k in (
            "uuid",
            "username",
            "first_name",
            "last_name",
            "email",
            "doc_id",
            "facility_id",
            "role",
            "deactivated_at",
        )
    }


def event_user(row: Any) -> dict[str, Any]:
    """The user as domain events carry it (never a password hash)."""
    out = {k: row[k] for k in ("id", "uuid", "username", "first_name", "last_name", "email", "doc_id", "facility_id",
                               "role", "auth_source", "deactivated_at")}
    out["active"] = row["deactivated_at"] is None
    return out


@dataclass
class NewUser:
    """A validated account to insert."""

    username: str
    role: str
    facility_id: int
    first_name: str = ""
    last_name: str = ""
    email: str | None = None
    doc_id: str | None = None
    password_hash: str | None = None
    must_change_password: bool = False
    auth_source: str = "local"
    extra_facility_ids: list[int] = field(default_factory=list)


async def fetch_user_tx(tx: aiosqlite.Connection, user_id: int) -> Any:
    """The users row inside a transaction."""
    cur = await tx.execute(f"SELECT {USER_COLUMNS} FROM users WHERE id = ?", (user_id,))  # noqa: S608
    return await cur.fetchone()


async def facilities_exist_tx(tx: aiosqlite.Connection, ids: list[int]) -> list[int]:
    """The ids among these that are not facilities."""
    missing = []
    for fid in ids:
        cur = await tx.execute("SELECT 1 FROM facilities WHERE id = ?", (fid,))
        if await cur.fetchone() is None:
            missing.append(fid)
    return missing


async def _set_extra_facilities(tx: aiosqlite.Connection, user_id: int, ids: list[int]) -> None:
    await tx.execute("DELETE FROM user_facilities WHERE user_id = ?", (user_id,))
    for fid in ids:
        await tx.execute("INSERT INTO user_facilities (user_id, facility_id) VALUES (?, ?)", (user_id, fid))


async def insert_user_tx(tx: aiosqlite.Connection, now: str, new: NewUser, actor: Actor) -> Any:
    """Insert an account (+ audit, + outbox for learners) in the caller's transaction; return its row."""
    cur = await tx.execute(
        "INSERT INTO users (uuid, username, username_key, first_name, last_name, email, doc_id, facility_id, role,"
        " password_hash, must_change_password, auth_source, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            str(uuid.uuid4()),
            new.username,
            username_key(new.username),
            new.first_name,
            new.last_name,
            new.email,
            new.doc_id,
            new.facility_id,
            new.role,
            new.password_hash,
            int(new.must_change_password),
            new.auth_source,
            now,
            now,
        ),
    )
    assert cur.lastrowid is not None
    user_id = cur.lastrowid
    if new.role == Role.DEPARTMENT_ADMIN.value:
        await _set_extra_facilities(tx, user_id, [f for f in new.extra_facility_ids if f != new.facility_id])
    row = await fetch_user_tx(tx, user_id)
    await record_tx(
        tx,
        now,
        AuditAction.USER_CREATED,
        actor,
        target_id=user_id,
        target_name=new.username,
        facility_id=new.facility_id,
        details={"role": new.role, "auth_source": new.auth_source},
    )
    if new.password_hash is not None:
        await record_tx(
            tx,
            now,
            AuditAction.PASSWORD_SET,
            actor,
            target_id=user_id,
            target_name=new.username,
            facility_id=new.facility_id,
            details={"temporary": new.must_change_password},
        )
    if new.role == Role.LEARNER.value:
        await add_outbox(tx, OutboxTopic.USER_CREATED, row["uuid"], roster_payload(row))
    await add_event(tx, EventType.USER_CREATED, {"user": event_user(row)})
    return row


async def update_user_tx(
    tx: aiosqlite.Connection, now: str, before: Any, changes: dict[str, Any], actor: Actor, sessions: Sessions
) -> Any:
    """Apply validated changes (+ audit, outbox, session ends on privilege change); return the new row."""
    user_id = before["id"]
    extra = changes.pop("extra_facility_ids", None)
    changed = {k: v for k, v in changes.items() if before[k] != v}
    if changed:
        sets = ", ".join(f"{k} = ?" for k in changed)
        await tx.execute(
            f"UPDATE users SET {sets}, updated_at = ? WHERE id = ?",  # noqa: S608 - keys validated
            (*changed.values(), now, user_id),
        )
    role = changed.get("role", before["role"])
    if extra is not None or "role" in changed:
        home = changed.get("facility_id", before["facility_id"])
        keep = [f for f in (extra or []) if f != home] if role == Role.DEPARTMENT_ADMIN.value else []
        if extra is None and role == Role.DEPARTMENT_ADMIN.value:
            cur = await tx.execute("SELECT facility_id FROM user_facilities WHERE user_id = ?", (user_id,))
            keep = [r[0] for r in await cur.fetchall()]
        await _set_extra_facilities(tx, user_id, keep)
        if extra is not None:
            changed["extra_facility_ids"] = keep
    row = await fetch_user_tx(tx, user_id)
    target = {"target_id": user_id, "target_name": row["username"], "facility_id": row["facility_id"]}
    if "role" in changed:
        await record_tx(
            tx, now, AuditAction.ROLE_CHANGED, actor, **target, details={"from": before["role"], "to": row["role"]}
        )
    if "facility_id" in changed or "extra_facility_ids" in changed:
        await record_tx(
            tx,
            now,
            AuditAction.FACILITY_CHANGED,
            actor,
            **target,
            details={
                "from": before["facility_id"],
                "to": row["facility_id"],
                "extra": changed.get("extra_facility_ids"),
            },
        )
    other = sorted(set(changed) - {"role", "facility_id", "extra_facility_ids"})
    if other:
        await record_tx(tx, now, AuditAction.USER_UPDATED, actor, **target, details={"fields": other})
    if {"role", "facility_id", "extra_facility_ids"} & set(changed):
        # A privilege change invalidates every session: the next sign-in gets a fresh id and rights.
        await sessions.end_for_user_tx(tx, user_id, SessionState.REVOKED)
    if changed and Role.LEARNER.value in (before["role"], row["role"]):
        await add_outbox(tx, OutboxTopic.USER_UPDATED, row["uuid"], roster_payload(row))
    if changed:
        await add_event(tx, EventType.USER_UPDATED, {"user": event_user(row), "changed": sorted(changed)})
    return row


async def deactivate_user_tx(tx: aiosqlite.Connection, now: str, before: Any, actor: Actor, sessions: Sessions) -> Any:
    """Deactivate: end sessions, revoke tokens, audit, outbox for learners; return the new row."""
    user_id = before["id"]
    await tx.execute("UPDATE users SET deactivated_at = ?, updated_at = ? WHERE id = ?", (now, now, user_id))
    ended = await sessions.end_for_user_tx(tx, user_id, SessionState.DEACTIVATED)
    await tx.execute(
        "UPDATE api_tokens SET state = 'revoked', revoked_at = ? WHERE user_id = ? AND state = 'active'", (now, user_id)
    )
    row = await fetch_user_tx(tx, user_id)
    await record_tx(
        tx,
        now,
        AuditAction.USER_DEACTIVATED,
        actor,
        target_id=user_id,
        target_name=row["username"],
        facility_id=row["facility_id"],
        details={"sessions_ended": ended},
    )
    if row["role"] == Role.LEARNER.value:
        await add_outbox(tx, OutboxTopic.USER_DEACTIVATED, row["uuid"], roster_payload(row))
    await add_event(tx, EventType.USER_DEACTIVATED, {"user": event_user(row)})
    return row


async def reactivate_user_tx(tx: aiosqlite.Connection, now: str, before: Any, actor: Actor) -> Any:
    """Undo a deactivation (audit, outbox for learners)."""
    await tx.execute("UPDATE users SET deactivated_at = NULL, updated_at = ? WHERE id = ?", (now, before["id"]))
    row = await fetch_user_tx(tx, before["id"])
    await record_tx(
        tx,
        now,
        AuditAction.USER_REACTIVATED,
        actor,
        target_id=row["id"],
        target_name=row["username"],
        facility_id=row["facility_id"],
    )
    if row["role"] == Role.LEARNER.value:
        await add_outbox(tx, OutboxTopic.USER_UPDATED, row["uuid"], roster_payload(row))
    await add_event(tx, EventType.USER_UPDATED, {"user": event_user(row), "changed": ["active"]})
    return row


async def set_password_tx(
    tx: aiosqlite.Connection,
    now: str,
    user: Any,
    password_hash: str,
    *,
    temporary: bool,
    actor: Actor,
    sessions: Sessions,
    keep_session: int | None = None,
) -> None:
    """Store a new hash, end the user's other sessions, audit as set or (temporary) reset.

    A reset (temporary password) also revokes the user's API tokens: a reset is what an admin does when an
    account may be in the wrong hands, and a token minted by those hands must not outlive it.
    """
    await tx.execute(
        "UPDATE users SET password_hash = ?, must_change_password = ?, updated_at = ? WHERE id = ?",
        (password_hash, int(temporary), now, user["id"]),
    )
    await sessions.end_for_user_tx(tx, user["id"], SessionState.PASSWORD_CHANGED, keep=keep_session)
    if temporary:
        await tx.execute("UPDATE api_tokens SET state = 'revoked', revoked_at = ? WHERE user_id = ?"
                         " AND state = 'active'", (now, user["id"]))
    action = AuditAction.PASSWORD_RESET if temporary else AuditAction.PASSWORD_SET
    await record_tx(
        tx, now, action, actor, target_id=user["id"], target_name=user["username"], facility_id=user["facility_id"]
    )
