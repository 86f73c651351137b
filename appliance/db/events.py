"""Domain events: recorded in the caller's transaction, relayed to JetStream and webhooks by the events feature.

A feature calls `add_event(tx, EventType.X, data)` inside the write transaction that made the change, so
the change and its event commit together or not at all (the transactional outbox, as for sync). The core
owns the emitter and the list of types so that features emit without importing the events feature.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from enum import StrEnum
from typing import Any

import aiosqlite


class EventType(StrEnum):
    """Every domain event type; the value is the `type` receivers see and the subject suffix."""

    USER_CREATED = "user.created"
    USER_UPDATED = "user.updated"
    USER_DEACTIVATED = "user.deactivated"
    LOGIN_LOCKED = "login.locked"
    VIDEO_AVAILABLE = "video.available"
    VIDEO_FAILED = "video.failed"
    LIBRARY_ADDED = "library.added"
    LIBRARY_ERROR = "library.error"
    LIBRARY_REMOVED = "library.removed"
    SYNC_COMPLETED = "sync.completed"
    SYNC_FAILED = "sync.failed"
    PROVIDER_AUTH_FAILED = "provider.auth_failed"
    DEAD_LETTER_CREATED = "dead_letter.created"
    WEBHOOK_DISABLED = "webhook.disabled"
    # Sent to one webhook on request; never recorded as a domain event of the appliance.
    WEBHOOK_PING = "webhook.ping"


DOMAIN_EVENTS = tuple(t for t in EventType if t is not EventType.WEBHOOK_PING)
"""The types a webhook can subscribe to."""


def new_event_id() -> str:
    """`msg_` + 26 characters: a millisecond time prefix (ids sort roughly by time) and 80 random bits."""
    raw = int(time.time() * 1000).to_bytes(6, "big") + secrets.token_bytes(10)
    return "msg_" + base64.b32encode(raw).decode().rstrip("=").lower()


def encode_data(data: dict[str, Any]) -> str:
    """The stored JSON of an event's data (compact, keys sorted, so the signed body never changes)."""
    return json.dumps(data, separators=(",", ":"), sort_keys=True, ensure_ascii=False, default=str)


async def add_event(tx: aiosqlite.Connection, type: EventType, data: dict[str, Any]) -> str:  # noqa: A002
    """Record one event in the caller's open write transaction; returns its id (the webhook-id receivers see)."""
    event_id = new_event_id()
    await tx.execute("INSERT INTO events (id, type, data) VALUES (?, ?, ?)", (event_id, type.value, encode_data(data)))
    return event_id
