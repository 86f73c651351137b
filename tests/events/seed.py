"""Write webhooks and events straight into a daemon's database, as the daemon itself (or a CLI) would."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from appliance.core.vault import Vault, load_or_create_key
from appliance.db.events import EventType, encode_data, new_event_id
from appliance.events.signing import new_secret
from appliance.events.store import PURPOSE, seal_secrets


def seed_webhook(db_path: Path, key_file: Path, url: str, events: list[str] | None = None) -> str:
    """A webhook sealed with the daemon's key; returns its whsec_ secret."""
    secret = new_secret()
    vault = Vault(load_or_create_key(key_file)).for_purpose(PURPOSE)
    conn = sqlite3.connect(db_path, timeout=30)
    with conn:
        conn.execute("INSERT INTO webhooks (url, events, secret) VALUES (?, ?, ?)",
                     (url, json.dumps(events or ["*"]), seal_secrets(vault, secret)))
    conn.close()
    return secret


def insert_events(db_path: Path, count: int, event_type: EventType = EventType.LIBRARY_ADDED, *,
                  start: int = 0) -> list[str]:
    """`count` events in one transaction (what add_event writes); returns their ids."""
    ids = [new_event_id() for _ in range(count)]
    conn = sqlite3.connect(db_path, timeout=30)
    with conn:
        conn.executemany("INSERT INTO events (id, type, data) VALUES (?, ?, ?)",
                         [(event_id, event_type.value, encode_data({"n": start + i, "library": {"slug": f"lib{i}"}}))
                          for i, event_id in enumerate(ids)])
    conn.close()
    return ids


def count_rows(db_path: Path, sql: str) -> int:
    """One integer from the database."""
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()
