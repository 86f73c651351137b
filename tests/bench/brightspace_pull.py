"""Benchmark: one pull of 10,000 Brightspace users with their enrollments and grades, by the real daemon.

Run by hand:  .venv/bin/python -m tests.bench.brightspace_pull [--users N] [--oauth]

The fake Brightspace (in this process) holds N users, N/100 course offerings of 100 learners each and two
graded grade objects per course; the appliance holds N learners whose uuids are the users' OrgDefinedIds,
so every enrollment and grade lands. Prints the pull's time, the requests the fake served and the peak
RSS of the daemon's primary process. Target: under 60 s and under 200 MB for 10,000 users.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from appliance.auth.usernames import username_key
from appliance.sync.secrets import Vault, load_or_create_key
from tests.bench.sync_drain import RssSampler, scalar, wait_for
from tests.daemon import write_config
from tests.fakes.brightspace import FakeBrightspace
from tests.sync.test_crash import start_ready

SYNC_TOML = """[sync]
relay_interval_s = 0.05
probe_timeout_s = 5.0
status_interval_s = 2.0
scheduler_tick_s = 3600.0
"""


def seed(db_path: Path, key_file: Path, creds: dict[str, str], base_url: str, uuids: list[str]) -> None:
    """The provider and the local learners, written directly (the daemon is not running)."""
    vault = Vault(load_or_create_key(key_file))
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("INSERT INTO providers (type, name, base_url, account_id, credentials, push_roster) VALUES"
                     " ('brightspace', 'Brightspace', ?, '', ?, 0)", (base_url, vault.seal(creds)))
        conn.executemany(
            "INSERT INTO users (uuid, username, username_key, first_name, last_name, facility_id, role)"
            " VALUES (?, ?, ?, 'Bench', ?, 1, 'learner')",
            [(u, f"bench{i}", username_key(f"bench{i}"), str(i)) for i, u in enumerate(uuids)],
        )
    conn.close()


async def main(users: int, oauth: bool) -> None:
    fake = await FakeBrightspace().start()
    uuids = [str(uuid.uuid4()) for _ in range(users)]
    upstream = [fake.add_user("Bench", str(i), org_defined_id=u, user_name=f"b{i}") for i, u in enumerate(uuids)]
    for c in range(max(1, users // 100)):
        ou = int(fake.add_course(f"Course {c}")["Identifier"])
        members = upstream[c * 100 : (c + 1) * 100]
        grades = [fake.add_grade(ou, "Quiz"), fake.add_grade(ou, "Exam", max_points=100)]
        for member in members:
            fake.enroll(ou, member["UserId"])
            fake.set_grade(ou, grades[0], member["UserId"], 7)
            fake.set_grade(ou, grades[1], member["UserId"], 81)
    creds = fake.oauth_credentials() if oauth else fake.id_key_credentials()
    with tempfile.TemporaryDirectory(prefix="bench-brightspace-") as tmp:
        root = Path(tmp)
        config = write_config(root, SYNC_TOML)
        await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "appliance", "migrate", "--config",
                                                 str(config)], check=True, capture_output=True, cwd=root)
        db_path = root / "var" / "appliance.db"
        seed(db_path, root / "var" / "secrets" / "sync.key", creds, fake.base_url, uuids)
        daemon = await asyncio.to_thread(start_ready, root, config)
        sampler = RssSampler(daemon.pid)
        sampler.start()
        try:
            await wait_for(lambda: scalar(db_path, "SELECT uplink = 'up' FROM providers") == 1, timeout=60)
            before = sum(fake.requests.values())
            conn = sqlite3.connect(db_path, timeout=30)
            with conn:
                run_id = conn.execute(
                    "INSERT INTO sync_runs (provider_id, job, trigger) VALUES (1, 'pull', 'manual')").lastrowid
            conn.close()
            start = time.monotonic()
            await wait_for(
                lambda: scalar(db_path, f"SELECT state IN ('succeeded', 'failed') FROM sync_runs WHERE id = {run_id}")
                == 1, timeout=1800, interval=0.2)
            took = time.monotonic() - start
            ok = scalar(db_path, f"SELECT state = 'succeeded' FROM sync_runs WHERE id = {run_id}") == 1
            mapped = scalar(db_path, "SELECT COUNT(*) FROM provider_user_mappings WHERE user_id IS NOT NULL")
            enrollments = scalar(db_path, "SELECT COUNT(*) FROM enrollments")
            grades = scalar(db_path, "SELECT COUNT(*) FROM milestones")
            requests = sum(fake.requests.values()) - before
            print(f"brightspace pull ({'OAuth' if oauth else 'ID-key'}): {mapped:,} users matched, "
                  f"{enrollments:,} enrollments, {grades:,} grades in {took:.1f}s "
                  f"({'succeeded' if ok else 'FAILED'}); {requests:,} requests; "
                  f"peak RSS of the daemon's primary {sampler.peak_primary / 2**20:.0f} MiB "
                  f"(target < 60 s, < 200 MB)")
        finally:
            sampler.stop_flag.set()
            await asyncio.to_thread(daemon.stop)
            await fake.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--oauth", action="store_true", help="OAuth 2.0 instead of ID-key signatures")
    args = parser.parse_args()
    asyncio.run(main(args.users, args.oauth))
