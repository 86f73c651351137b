"""The real daemon: SIGKILL mid-retry loses nothing; a burst of 10,000 events is delivered with bounded memory."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.daemon import start_daemon, write_config
from tests.events.conftest import loopback_allowed
from tests.events.receiver import Receiver
from tests.events.seed import count_rows, insert_events, seed_webhook

TOML = """
[events]
relay_interval_s = 0.05

[webhooks]
retry_initial_s = 0.3
retry_max_interval_s = 2.0
request_timeout_s = 5.0

[sync]
enabled = false
"""


def daemon_toml() -> str:
    """TOML of the test daemons, with loopback allowed when the egress policy exists."""
    egress = loopback_allowed()
    if egress:
        return TOML + '\n[egress]\nallowed_networks = ["127.0.0.0/8"]\n'
    return TOML


async def migrated(tmp_path: Path) -> tuple[Path, Path]:
    """A config and a migrated database (the daemon's key is created by the seed)."""
    config = write_config(tmp_path, daemon_toml())
    await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "appliance", "migrate", "--config", str(config)],
                            check=True, capture_output=True, cwd=tmp_path)
    return config, tmp_path / "var" / "appliance.db"


def kill_tree(daemon) -> None:
    """SIGKILL the primary (a power cut of the process) and wait for its children to follow."""
    tree = daemon.tree()
    daemon.kill()
    psutil.wait_procs(tree[1:], timeout=10)
    for proc in tree[1:]:
        if proc.is_running():
            proc.kill()


@pytest.mark.slow
async def test_sigkill_mid_retry_then_restart_delivers_every_event(tmp_path: Path) -> None:
    config, db_path = await migrated(tmp_path)
    rx = Receiver(fail_every=2)  # half the requests fail: plenty of deliveries are waiting for a retry
    await rx.start()
    try:
        rx.secrets.append(seed_webhook(db_path, tmp_path / "var" / "secrets" / "sync.key", rx.url))
        ids = insert_events(db_path, 400)
        daemon = await asyncio.to_thread(start_daemon, tmp_path, config=config)
        retrying = "SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'pending' AND attempts > 0"
        deadline = time.monotonic() + 120
        while True:
            # The kill follows the very reading that showed deliveries owed and waiting for a retry (a second
            # reading could find the retries already done on a fast machine).
            before, waiting = len(rx.counts), count_rows(db_path, retrying)
            if waiting >= 20 and before >= 50:
                break
            assert time.monotonic() < deadline, (before, rx.requests, waiting, daemon.output()[-3000:])
            await asyncio.sleep(0.05)
        await asyncio.to_thread(kill_tree, daemon)
        assert before < len(ids) and waiting >= 20  # killed mid-retry, with events still owed
        more = insert_events(db_path, 100, start=400)  # written while the daemon is down
        rx.fail_every = 3
        daemon = await asyncio.to_thread(start_daemon, tmp_path, config=config)
        await rx.wait_for(lambda: set(rx.counts) >= set(ids + more), timeout=120)
        # A receiver that answered 500 still saw the event: its delivery is retried until one succeeds.
        await rx.wait_for(lambda: count_rows(db_path, "SELECT COUNT(*) FROM webhook_deliveries"
                                                      " WHERE state != 'succeeded'") == 0, timeout=120)
        await asyncio.to_thread(daemon.stop)
        assert rx.bad == []
        assert set(rx.counts) == set(ids + more)  # every event, none invented
        assert count_rows(db_path, "SELECT COUNT(*) FROM webhook_deliveries WHERE state != 'succeeded'") == 0
        assert count_rows(db_path, "SELECT COUNT(*) FROM webhook_attempts WHERE ok = 0") >= 100
    finally:
        await rx.stop()


@pytest.mark.slow
async def test_ten_thousand_events_in_a_burst_with_bounded_memory(tmp_path: Path) -> None:
    config, db_path = await migrated(tmp_path)
    rx = Receiver()
    await rx.start()
    try:
        rx.secrets.append(seed_webhook(db_path, tmp_path / "var" / "secrets" / "sync.key", rx.url))
        daemon = await asyncio.to_thread(start_daemon, tmp_path, config=config)
        primary = psutil.Process(daemon.pid)
        idle_rss = primary.memory_info().rss
        ids = insert_events(db_path, 10_000)
        peak = idle_rss
        started = time.monotonic()
        async with asyncio.timeout(240):
            while len(rx.counts) < len(ids):
                peak = max(peak, primary.memory_info().rss)
                await asyncio.sleep(0.1)
        elapsed = time.monotonic() - started
        await asyncio.to_thread(daemon.stop)
        assert set(rx.counts) == set(ids) and rx.bad == []
        print(f"10,000 events in {elapsed:.1f}s; primary RSS idle {idle_rss >> 20} MiB, peak {peak >> 20} MiB")
        assert peak < 200 * 1024 * 1024
        assert peak - idle_rss < 80 * 1024 * 1024  # the queue lives in SQLite, not in memory
    finally:
        await rx.stop()
