"""SIGKILL of the real daemon around an OAuth refresh-token rotation: the only valid token is never lost.

The kill lands exactly between the two steps without a hook in the daemon: the fake's token endpoint
takes SQLite's write lock just before it answers, so the daemon holds the rotated pair in memory and
waits on the lock to store it when it is killed.
"""

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from appliance.sync.secrets import Vault, load_or_create_key
from tests.daemon import start_daemon
from tests.fakes.brightspace import FakeBrightspace
from tests.killnine import kill_tree, migrated, seed_provider

SYNC_TOML = """[sync]
relay_interval_s = 0.05
backoff_initial_s = 0.05
backoff_max_s = 0.5
probe_timeout_s = 5.0
probe_interval_s = 1.0
status_interval_s = 0.5
scheduler_tick_s = 3600.0
"""


def seed(db_path: Path, key_file: Path, creds: dict[str, str]) -> None:
    """One Brightspace provider with OAuth credentials, written as the API would."""
    conn = sqlite3.connect(db_path)
    with conn:
        seed_provider(conn, key_file, "brightspace", "Brightspace", creds["token_url"].split("/core")[0], creds)
    conn.close()


def stored(db_path: Path, key_file: Path) -> tuple[dict[str, str], str, str]:
    """(credentials, runtime_state, uplink) of the provider."""
    vault = Vault(load_or_create_key(key_file))
    conn = sqlite3.connect(db_path, timeout=10)
    try:
        row = conn.execute("SELECT credentials, runtime_state, uplink FROM providers").fetchone()
    finally:
        conn.close()
    return vault.open(row[0]), row[1], row[2]


async def prepare(tmp_path: Path, fake: FakeBrightspace) -> tuple[Path, Path, Path, dict[str, str]]:
    config, db_path, key = await migrated(tmp_path, SYNC_TOML)
    creds = fake.oauth_credentials()
    await asyncio.to_thread(seed, db_path, key, creds)
    return config, db_path, key, creds


async def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(predicate):
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("rotation", ["on_use", "strict"])
async def test_kill_between_refresh_and_store(tmp_path, rotation):
    fake = await FakeBrightspace(rotation=rotation).start()
    try:
        config, db_path, key, creds = await prepare(tmp_path, fake)
        lock: list[sqlite3.Connection] = []

        def take_the_write_lock() -> None:
            conn = sqlite3.connect(db_path, timeout=10, isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            lock.append(conn)

        fake.on_refresh = take_the_write_lock
        daemon = await asyncio.to_thread(start_daemon, tmp_path, config=config, wait=False)
        try:
            await wait_for(lambda: fake.refreshes == 1)
            await asyncio.sleep(1.0)  # the daemon has the answer and waits for the lock to store it
        finally:
            await asyncio.to_thread(kill_tree, daemon)
            for conn in lock:
                conn.rollback()
                conn.close()
        fake.on_refresh = None
        saved, _, _ = await asyncio.to_thread(stored, db_path, key)
        assert saved["refresh_token"] == creds["refresh_token"]  # the store never happened
        assert not saved.get("access_token")

        daemon = await asyncio.to_thread(start_daemon, tmp_path, config=config, wait=False)
        try:
            if rotation == "on_use":
                # The issued pair was never used, so the old token still works; the new daemon rotates it.
                await wait_for(lambda: stored(db_path, key)[2] == "up")
                saved, state, _ = await asyncio.to_thread(stored, db_path, key)
                assert state == "ready"
                assert saved["refresh_token"] in fake.live_refresh_tokens()
                assert creds["refresh_token"] not in fake.live_refresh_tokens()
            else:
                # Strict one-time use: the answer died with the process. The provider says so, clearly.
                await wait_for(lambda: stored(db_path, key)[1] == "auth_failed")
                conn = sqlite3.connect(db_path, timeout=10)
                error = conn.execute("SELECT last_error FROM providers").fetchone()[0]
                conn.close()
                assert "invalid_grant" in error and "authorize the app again" in error
            assert daemon.get("/healthz")[0] == 200  # the appliance keeps serving either way
        finally:
            await asyncio.to_thread(daemon.stop)
    finally:
        await fake.stop()


@pytest.mark.slow
async def test_kill_after_store_before_first_use_keeps_the_new_token(tmp_path):
    fake = await FakeBrightspace(rotation="strict").start()
    try:
        config, db_path, key, creds = await prepare(tmp_path, fake)

        def hang_every_later_call() -> None:
            fake.delay = 60.0  # the first use of the new pair never gets an answer

        fake.on_refresh = hang_every_later_call
        daemon = await asyncio.to_thread(start_daemon, tmp_path, config=config, wait=False)
        try:
            await wait_for(lambda: stored(db_path, key)[0]["refresh_token"] != creds["refresh_token"])
        finally:
            await asyncio.to_thread(kill_tree, daemon)
        fake.on_refresh, fake.delay = None, 0.0
        saved, _, _ = await asyncio.to_thread(stored, db_path, key)
        assert saved["refresh_token"] in fake.live_refresh_tokens()  # strict: the old one is dead, this one lives
        assert creds["refresh_token"] not in fake.live_refresh_tokens()
        daemon = await asyncio.to_thread(start_daemon, tmp_path, config=config, wait=False)
        try:
            await wait_for(lambda: stored(db_path, key)[2] == "up")
            assert stored(db_path, key)[1] == "ready"
        finally:
            await asyncio.to_thread(daemon.stop)
    finally:
        await fake.stop()
