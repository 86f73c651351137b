"""A live daemon for fuzzing: accounts and API tokens written straight into its database.

The fuzzing accounts get ids far above anything the fuzzer guesses (it favours small numbers), so a
generated `DELETE /api/v1/users/1` or a token revocation hits other rows, not the caller itself.
"""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path

from appliance.auth.opaque import hash_secret, new_api_token
from appliance.auth.passwords import hash_password
from appliance.auth.usernames import username_key
from tests.daemon import Daemon, start_daemon

FUZZ_TOML = """
[auth]
api_rate_per_minute = 1000000
api_burst = 1000000
api_address_rate_per_minute = 1000000
api_address_burst = 1000000
login_rate_per_minute = 1000000
login_burst = 1000000
argon2_time_cost = 1
argon2_memory_kib = 8192
"""
FUZZ_USER_ID = {"system_admin": 900_001, "learner": 900_002, "facility_admin": 900_003}


@dataclass
class FuzzTarget:
    """The daemon and a bearer token per role."""

    daemon: Daemon
    tokens: dict[str, str]


def _add_account(db: sqlite3.Connection, role: str) -> str:
    user_id = FUZZ_USER_ID[role]
    name = f"fuzz-{role.replace('_', '-')}"
    db.execute(
        "INSERT INTO users (id, uuid, username, username_key, first_name, last_name, facility_id, role,"
        " password_hash) VALUES (?, ?, ?, ?, 'Fuzz', 'Account', 1, ?, ?)",
        (user_id, str(uuid.uuid4()), name, username_key(name), role, hash_password("fuzz password 1")),
    )
    token, prefix = new_api_token()
    db.execute("INSERT INTO api_tokens (id, token_hash, prefix, name, user_id, role) VALUES (?, ?, ?, ?, ?, ?)",
               (user_id, hash_secret(token), prefix, f"fuzz {role}", user_id, role))
    return token


def start_fuzz_target(tmp_path: Path, extra_toml: str = "") -> FuzzTarget:
    """Start the daemon (one worker) and give it one account and token per fuzzed role."""
    daemon = start_daemon(tmp_path, FUZZ_TOML + extra_toml, workers=1)
    with sqlite3.connect(daemon.data_dir / "appliance.db", timeout=30) as db:
        tokens = {role: _add_account(db, role) for role in FUZZ_USER_ID}
    return FuzzTarget(daemon, tokens)
