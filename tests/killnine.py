"""kill -9 of the real daemon, shared by the crash tests: a migrated database seeded as the daemon would have
written it, a daemon started and waited for, killed like a power cut, and what it had settled."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psutil

from appliance.auth.usernames import username_key
from appliance.sync.secrets import Vault, load_or_create_key
from tests.daemon import Daemon, start_daemon, write_config


async def migrated(tmp_path: Path, sync_toml: str) -> tuple[Path, Path, Path]:
    """A config with `sync_toml` and its migrated database; returns (config, database, vault key file)."""
    config = write_config(tmp_path, sync_toml)
    await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "appliance", "migrate", "--config", str(config)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    return config, tmp_path / "var" / "appliance.db", tmp_path / "var" / "secrets" / "sync.key"


def seed_provider(conn: sqlite3.Connection, key_file: Path, kind: str, name: str, base_url: str,
                  credentials: dict[str, str], *, account_id: str = "", push_roster: bool = True) -> int:
    """A provider row with its credentials sealed by the daemon's vault key."""
    vault = Vault(load_or_create_key(key_file))
    cur = conn.execute(
        "INSERT INTO providers (type, name, base_url, account_id, credentials, push_roster) VALUES (?, ?, ?, ?, ?, ?)",
        (kind, name, base_url, account_id, vault.seal(credentials), int(push_roster)),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def seed_learners(conn: sqlite3.Connection, usernames: list[str], *, outbox: bool = True) -> list[str]:
    """Learners of facility 1 (last name = their number) and, unless told not to, the outbox row of each
    creation; returns their uuids in order."""
    uuids = []
    for i, name in enumerate(usernames):
        user_uuid = str(uuid.uuid4())
        uuids.append(user_uuid)
        conn.execute(
            "INSERT INTO users (uuid, username, username_key, first_name, last_name, facility_id, role)"
            " VALUES (?, ?, ?, 'Crash', ?, 1, 'learner')",
            (user_uuid, name, username_key(name), str(i)),
        )
        if outbox:
            payload: dict[str, Any] = {"uuid": user_uuid, "username": name, "role": "learner", "facility_id": 1,
                                       "first_name": "Crash", "last_name": str(i)}
            conn.execute("INSERT INTO outbox (topic, aggregate_id, payload) VALUES ('roster.user.created', ?, ?)",
                         (user_uuid, json.dumps(payload)))
    return uuids


def settled(db_path: Path) -> int:
    """Records the provider has dealt with."""
    conn = sqlite3.connect(db_path, timeout=10)
    try:
        return conn.execute("SELECT COUNT(*) FROM push_deliveries WHERE state != 'sending'").fetchone()[0]
    finally:
        conn.close()


def start_ready(tmp_path: Path, config: Path) -> Daemon:
    """Start the daemon and wait until ready; never leave it running if it does not get there."""
    daemon = start_daemon(tmp_path, config=config, wait=False)
    try:
        daemon.wait_ready()
    except BaseException:
        kill_tree(daemon)
        raise
    return daemon


def kill_tree(daemon: Daemon) -> None:
    """SIGKILL the primary like a power cut of the process, then wait until its children are gone too."""
    tree = daemon.tree()
    daemon.kill()
    psutil.wait_procs(tree[1:], timeout=10)
    for proc in tree[1:]:
        if proc.is_running():
            proc.kill()
