"""The audit log: who did what to whom, when and from where."""

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import aiosqlite

from appliance.db.database import Database


class AuditAction(StrEnum):
    """Audited events (the audit_log.action CHECK lists the same values)."""

    USER_CREATED = "user_created"
    USER_UPDATED = "user_updated"
    PASSWORD_SET = "password_set"  # noqa: S105 - an action name
    PASSWORD_RESET = "password_reset"  # noqa: S105
    ROLE_CHANGED = "role_changed"
    FACILITY_CHANGED = "facility_changed"
    USER_DEACTIVATED = "user_deactivated"
    USER_REACTIVATED = "user_reactivated"
    SIGN_IN_SUCCEEDED = "sign_in_succeeded"
    SIGN_IN_FAILED = "sign_in_failed"
    SIGNED_OUT = "signed_out"
    SESSION_REVOKED = "session_revoked"
    ACCOUNT_LOCKED = "account_locked"
    TOKEN_CREATED = "token_created"  # noqa: S105
    TOKEN_REVOKED = "token_revoked"  # noqa: S105
    FACILITY_CREATED = "facility_created"
    FACILITY_UPDATED = "facility_updated"
    ROSTER_IMPORTED = "roster_imported"


@dataclass(frozen=True)
class Actor:
    """Who acted and from where (the system itself has no user id)."""

    user_id: int | None
    username: str
    client_addr: str

    @classmethod
    def system(cls, name: str = "system") -> "Actor":
        """An actor for the shell and background jobs."""
        return cls(None, name, "")


_INSERT = (
    "INSERT INTO audit_log (at, action, actor_user_id, actor_username, target_user_id, target_username,"
    " facility_id, client_addr, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _row(
    at: str,
    action: AuditAction,
    actor: Actor,
    target_id: int | None,
    target_name: str,
    facility_id: int | None,
    details: dict[str, Any] | None,
) -> tuple[Any, ...]:
    return (
        at,
        action.value,
        actor.user_id,
        actor.username[:200],
        target_id,
        target_name[:200],
        facility_id,
        actor.client_addr[:100],
        json.dumps(details or {}, separators=(",", ":"), sort_keys=True),
    )


async def record_tx(
    tx: aiosqlite.Connection,
    at: str,
    action: AuditAction,
    actor: Actor,
    *,
    target_id: int | None = None,
    target_name: str = "",
    facility_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Write an audit entry inside the caller's transaction (so it commits with the change)."""
    await tx.execute(_INSERT, _row(at, action, actor, target_id, target_name, facility_id, details))


async def record(
    db: Database,
    at: str,
    action: AuditAction,
    actor: Actor,
    *,
    target_id: int | None = None,
    target_name: str = "",
    facility_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Write an audit entry in its own transaction."""
    await db.execute(_INSERT, _row(at, action, actor, target_id, target_name, facility_id, details))


def entry_json(row: Any) -> dict[str, Any]:
    """An audit row as the API shows it."""
    return {
        "id": row["id"],
        "at": row["at"],
        "action": row["action"],
        "actor": {"user_id": row["actor_user_id"], "username": row["actor_username"]},
        "target": {"user_id": row["target_user_id"], "username": row["target_username"]},
        "facility_id": row["facility_id"],
        "client_addr": row["client_addr"],
        "details": json.loads(row["details"]),
    }
