"""Benchmark: drain a large offline roster backlog into the fake Canvas, and pull a large Canvas account.

Run by hand:  .venv/bin/python -m tests.bench.sync_drain [--short]

1. Anchor: bare HTTP requests/s against the fake Canvas from one aiohttp client at the daemon's
   concurrency (the ceiling any per-record push can reach on this machine).
2. Drain: N learners (each with its outbox row) are queued while Canvas is down; the real daemon
   relays them to JetStream; Canvas comes up; we time until every record is settled. Prints records/s,
   ratio to the anchor, time to empty, peak RSS of the daemon's primary process (and of nats-server).
3. Pull: 50,000 users and 5,000 courses at 100 per page (short: 5,000 / 500): time of one pull run.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import aiohttp
import psutil

from appliance.auth.usernames import username_key
from appliance.sync.secrets import Vault, load_or_create_key
from tests.daemon import write_config
from tests.fakes.canvas import FakeCanvas
from tests.sync.test_crash import start_ready

SYNC_TOML = """[sync]
relay_interval_s = 0.05
backoff_initial_s = 0.2
backoff_max_s = 1.0
probe_timeout_s = 2.0
status_interval_s = 2.0
scheduler_tick_s = 3600.0
push_concurrency = {concurrency}
push_batch = 1000
sis_batch_min = {sis_batch_min}
"""


def seed(db_path: Path, key_file: Path, base_url: str, learners: int) -> None:
    """Provider + learners + their outbox rows, written directly (the daemon is not running)."""
    vault = Vault(load_or_create_key(key_file))
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute(
            "INSERT INTO providers (type, name, base_url, account_id, credentials) VALUES"
            " ('canvas_oss', 'Canvas', ?, '1', ?)",
            (base_url, vault.seal({"access_token": "canvas-token"})),
        )
        users, outbox = [], []
        for i in range(learners):
            user_uuid, name = str(uuid.uuid4()), f"bench{i}"
            users.append((user_uuid, name, username_key(name), str(i)))
            outbox.append(
                (
                    user_uuid,
                    f'{{"uuid": "{user_uuid}", "username": "{name}", "role": "learner",'
                    f' "facility_id": 1, "first_name": "Bench", "last_name": "{i}"}}',
                )
            )
        conn.executemany(
            "INSERT INTO users (uuid, username, username_key, first_name, last_name, facility_id, role)"
            " VALUES (?, ?, ?, 'Bench', ?, 1, 'learner')",
            users,
        )
        conn.executemany(
            "INSERT INTO outbox (topic, aggregate_id, payload) VALUES ('roster.user.created', ?, ?)", outbox
        )
    conn.close()


def scalar(db_path: Path, sql: str) -> int:
    """One number from the daemon's database (read-only, while it runs)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        return int(conn.execute(sql).fetchone()[0] or 0)
    finally:
        conn.close()


class RssSampler(threading.Thread):
    """Peak RSS of the daemon's primary and of its nats-server child, sampled every 100 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.peak_primary = 0
        self.peak_nats = 0
        self.stop_flag = threading.Event()

    def run(self) -> None:
        while not self.stop_flag.is_set():
            try:
                self.peak_primary = max(self.peak_primary, self.proc.memory_info().rss)
                for child in self.proc.children(recursive=True):
                    if "nats" in child.name():
                        self.peak_nats = max(self.peak_nats, child.memory_info().rss)
            except psutil.Error:
                pass
            time.sleep(0.1)


async def anchor(fake: FakeCanvas, concurrency: int, seconds: float = 3.0) -> float:
    """Bare requests/s against the fake at the daemon's concurrency."""
    done = 0
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                async with session.get(
                    f"{fake.base_url}/api/v1/accounts/1", headers={"Authorization": "Bearer canvas-token"}
                ) as resp:
                    await resp.read()
                done += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / seconds


async def wait_for(predicate, timeout: float, interval: float = 0.5) -> None:
    """Poll a blocking predicate in a thread until true."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(predicate):
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark step did not finish in time")
        await asyncio.sleep(interval)


async def main(short: bool, per_record: bool) -> None:
    learners = 10_000 if short else 100_000
    pull_users, pull_courses = (5_000, 500) if short else (50_000, 5_000)
    concurrency = 16
    fake = await FakeCanvas().start()
    rate = await anchor(fake, concurrency)
    print(f"anchor: fake Canvas answers {rate:,.0f} bare requests/s at concurrency {concurrency}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = write_config(root, SYNC_TOML.format(concurrency=concurrency, sis_batch_min=0 if per_record else 100))
        await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "appliance", "migrate", "--config", str(config)],
            check=True,
            capture_output=True,
            cwd=root,
        )
        db_path = root / "var" / "appliance.db"
        started = time.monotonic()
        await asyncio.to_thread(seed, db_path, root / "var" / "secrets" / "sync.key", fake.base_url, learners)
        print(f"queued {learners:,} roster changes offline in {time.monotonic() - started:.1f}s")
        await fake.down()
        daemon = await asyncio.to_thread(start_ready, root, config)
        sampler = RssSampler(daemon.pid)
        sampler.start()
        try:
            relay_start = time.monotonic()
            await wait_for(
                lambda: scalar(db_path, "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL") == 0, timeout=600
            )
            print(
                f"relay: {learners:,} outbox rows to JetStream in {time.monotonic() - relay_start:.1f}s"
                " while Canvas was down"
            )
            await fake.up()
            requests_before = sum(fake.requests.values())
            drain_start = time.monotonic()
            await wait_for(
                lambda: scalar(db_path, "SELECT COUNT(*) FROM push_deliveries WHERE state != 'sending'") >= learners,
                timeout=3600,
            )
            drain = time.monotonic() - drain_start
            upstream_rate = (sum(fake.requests.values()) - requests_before) / drain
            created = len(fake.state.user_creates)
            dupes = sum(1 for n in fake.state.user_creates.values() if n > 1)
            per_s = learners / drain
            again = await anchor(fake, concurrency)  # the machine is shared: anchor before and after
            rate = (rate + again) / 2
            print(f"anchor again after the drain: {again:,.0f} requests/s (mean {rate:,.0f})")
            path = "one POST per record" if per_record else "SIS imports"
            print(
                f"drain ({path}): {learners:,} records in {drain:.1f}s = {per_s:,.0f} records/s"
                f" = {per_s / rate:.2f} x the anchor's requests/s; upstream requests {upstream_rate:,.0f}/s;"
                f" upstream users {created:,}, duplicates {dupes}"
            )
            print(f"time until the queue was empty (from Canvas up): {drain:.1f}s")
            print(
                f"peak RSS: daemon primary {sampler.peak_primary / 2**20:.0f} MiB, "
                f"nats-server {sampler.peak_nats / 2**20:.0f} MiB"
            )

            # A second Canvas account holding only the pull's users and courses, as a second provider.
            source = await FakeCanvas().start()
            for i in range(pull_users):
                source.state.add_user(f"Pulled {i}", sis_user_id=f"ext-{i}")
            for i in range(pull_courses):
                source.state.add_course(f"Course {i}")
            vault = Vault(load_or_create_key(root / "var" / "secrets" / "sync.key"))
            conn = sqlite3.connect(db_path, timeout=30)
            with conn:
                conn.execute(
                    "INSERT INTO providers (id, type, name, base_url, account_id, credentials, push_roster)"
                    " VALUES (2, 'canvas_oss', 'Pull source', ?, '1', ?, 0)",
                    (source.base_url, vault.seal({"access_token": "canvas-token"})),
                )
            conn.close()
            await asyncio.sleep(3)  # the daemon notices the provider within 2 s
            conn = sqlite3.connect(db_path, timeout=30)
            with conn:
                run_id = conn.execute(
                    "INSERT INTO sync_runs (provider_id, job, trigger) VALUES (2, 'pull', 'manual')"
                ).lastrowid
            conn.close()
            pull_start = time.monotonic()
            await wait_for(
                lambda: (
                    scalar(db_path, f"SELECT state IN ('succeeded', 'failed') FROM sync_runs WHERE id = {run_id}") == 1
                ),
                timeout=1800,
            )
            pull = time.monotonic() - pull_start
            state = scalar(db_path, f"SELECT state = 'succeeded' FROM sync_runs WHERE id = {run_id}")
            mappings = scalar(db_path, "SELECT COUNT(*) FROM provider_user_mappings WHERE provider_id = 2")
            courses = scalar(db_path, "SELECT COUNT(*) FROM courses WHERE provider_id = 2")
            requests = sum(source.requests.values())
            await source.stop()
            print(
                f"pull: {mappings:,} users and {courses:,} courses (+ enrollments and submissions of each course)"
                f" against {learners:,} local learners"
                f" at 100/page in {pull:.1f}s ({'succeeded' if state else 'FAILED'}); fake served {requests:,}"
                " requests in total"
            )
            print(f"peak RSS after pull: daemon primary {sampler.peak_primary / 2**20:.0f} MiB")
        finally:
            sampler.stop_flag.set()
            await asyncio.to_thread(daemon.stop)
            await fake.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="10,000 records and a 5,000-user pull (under 2 min)")
    parser.add_argument("--per-record", action="store_true", help="no SIS-import batching: one POST per learner")
    args = parser.parse_args()
    asyncio.run(main(args.short, args.per_record))
