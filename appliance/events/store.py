"""Webhook rows: the sealed secrets, the API view, and the delivery log queries."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from appliance.core.vault import Vault
from appliance.events.signing import secret_key

WEBHOOK_COLUMNS = (
    "id, url, description, events, headers, enabled, secret, secret_rotated_at, previous_secret_until, failure_count,"
    " failing_since, disabled_reason, last_success_at, last_failure_at, created_at, updated_at"
)
DELIVERY_COLUMNS = (
    "d.id, d.webhook_id, d.state, d.attempts, d.next_attempt_at, d.expires_at, d.last_status, d.last_error,"
    " d.created_at, d.finished_at, e.id AS event_id, e.type AS event_type, e.created_at AS event_created_at"
)
PURPOSE = b"appliance.events.webhook-secret"


def seal_secrets(vault: Vault, current: str, previous: str | None = None) -> str:
    """Encrypt the current (and, during a rotation overlap, the previous) signing secret."""
    value = {"current": current}
    if previous:
        value["previous"] = previous
    return vault.seal(value)


def open_keys(vault: Vault, sealed: str, previous_until: str | None, now: datetime) -> list[bytes]:
    """The HMAC keys that sign now: the current secret, plus the previous one while its overlap lasts."""
    value = vault.open(sealed)
    keys = [secret_key(str(value["current"]))]
    previous = value.get("previous")
    if previous and previous_until and datetime.fromisoformat(previous_until) > now:
        keys.append(secret_key(str(previous)))
    return keys


def webhook_view(row: sqlite3.Row) -> dict[str, Any]:
    """The API form of a webhook (never its secret)."""
    return {
        "id": row["id"],
        "url": row["url"],
        "description": row["description"],
        "events": json.loads(row["events"]),
        "headers": json.loads(row["headers"]),
        "enabled": bool(row["enabled"]),
        "disabled_reason": row["disabled_reason"],
        "failure_count": row["failure_count"],
        "failing_since": row["failing_since"],
        "last_success_at": row["last_success_at"],
        "last_failure_at": row["last_failure_at"],
        "secret_rotated_at": row["secret_rotated_at"],
        "previous_secret_until": row["previous_secret_until"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def delivery_view(row: sqlite3.Row, attempts: list[sqlite3.Row]) -> dict[str, Any]:
    """The API form of one delivery with its attempts (the delivery log)."""
    return {
        "id": row["id"],
        "webhook_id": row["webhook_id"],
        "event_id": row["event_id"],
        "event_type": row["event_type"],
        "event_created_at": row["event_created_at"],
        "state": row["state"],
        "attempts": row["attempts"],
        "next_attempt_at": row["next_attempt_at"] if row["state"] == "pending" else None,
        "expires_at": row["expires_at"],
        "last_status": row["last_status"],
        "last_error": row["last_error"],
        "created_at": row["created_at"],
        "finished_at": row["finished_at"],
        "log": [
            {
                "attempt": a["attempt"],
                "at": a["at"],
                "ok": bool(a["ok"]),
                "status_code": a["status_code"],
                "latency_ms": a["latency_ms"],
                "error": a["error"],
                "response_excerpt": a["response_excerpt"],
            }
            for a in attempts
        ],
    }


@dataclass(frozen=True)
class Hook:
    """What the dispatcher needs of an enabled webhook."""

    id: int
    url: str
    headers: dict[str, str]
    keys: list[bytes]
    failing: bool
    stamp: str
