"""The transactional outbox: record a change for upstream systems inside the change's own transaction."""

import json
from enum import StrEnum
from typing import Any

import aiosqlite


class OutboxTopic(StrEnum):
    """What happened; the sync relay routes each topic to the providers that care."""

    USER_CREATED = "roster.user.created"
    USER_UPDATED = "roster.user.updated"
    USER_DEACTIVATED = "roster.user.deactivated"
    ENROLLMENT_ADDED = "roster.enrollment.added"
    ENROLLMENT_DROPPED = "roster.enrollment.dropped"


async def add_outbox(tx: aiosqlite.Connection, topic: OutboxTopic, aggregate_id: str, payload: dict[str, Any]) -> int:
    """Insert an outbox row in the caller's open write transaction and return its id."""
    cursor = await tx.execute(
        "INSERT INTO outbox (topic, aggregate_id, payload) VALUES (?, ?, ?)",
        (topic.value, aggregate_id, json.dumps(payload, separators=(",", ":"), sort_keys=True)),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid
