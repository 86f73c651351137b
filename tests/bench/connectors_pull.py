"""Benchmark: pull 10,000 users with their enrollments and progress from each connector's fake.

Run by hand:  .venv/bin/python -m tests.bench.connectors_pull [--short] [--only canvas,moodle,brightspace]

For each upstream with a fake (Canvas, Moodle, Brightspace), the fake holds N users (matching N local
learners by SIS id / idnumber / OrgDefinedId = uuid) spread over courses of 500 learners, each learner
with progress (Canvas: a graded submission and an enrollment score; Moodle: two activity completions and
a grade; Brightspace: a grade). The real daemon runs one pull job for a provider of that type; we print
the time of the run, the requests the fake served and the daemon's peak RSS (primary and nats-server).
Target: each pull of 10,000 users under 60 s and under 200 MB.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance.auth.usernames import username_key
from appliance.sync.secrets import Vault, load_or_create_key
from tests.bench.sync_drain import RssSampler, scalar, wait_for
from tests.daemon import write_config
from tests.sync.test_crash import start_ready
from tests.sync.upstreams import UPSTREAMS, Upstream

PER_COURSE = 500
SYNC_TOML = """[sync]
relay_interval_s = 0.5
probe_timeout_s = 5.0
status_interval_s = 5.0
scheduler_tick_s = 3600.0
per_page = 100
"""


def seed_canvas(fake: Any, uuids: list[str]) -> None:
    """Users with SIS id = uuid, courses of PER_COURSE, an enrollment with a score and a graded submission each."""
    state = fake.state
    course = None
    assignment = None
    for i, user_uuid in enumerate(uuids):
        if i % PER_COURSE == 0:
            course = state.add_course(f"Course {i // PER_COURSE}")
            assignment = state.add_assignment(course["id"], "Quiz")
        assert course is not None and assignment is not None
        user = state.add_user(f"Learner {i}", sis_user_id=user_uuid)
        # state.enroll scans every enrollment for an existing one (quadratic at this size): build it directly.
        enrollment_id = state.next_id()
        state.enrollments[enrollment_id] = {
            "id": enrollment_id, "course_id": course["id"], "course_section_id": course["id"] * 10,
            "user_id": user["id"], "type": "StudentEnrollment", "role": "StudentEnrollment", "role_id": 3,
            "enrollment_state": "active", "total_activity_time": 60 + i % 600, "sis_user_id": user_uuid,
            "grades": {"html_url": "", "current_score": 50.0 + i % 50, "current_grade": None,
                       "final_score": None, "final_grade": None},
            "user": {k: user[k] for k in ("id", "name", "sortable_name", "short_name")},
        }
        state.add_submission(assignment["id"], user["id"], submitted_at="2026-11-20T10:00:00Z", score=float(i % 10))


def seed_moodle(fake: Any, uuids: list[str]) -> None:
    """Users with idnumber = uuid, courses of PER_COURSE, two completions and a grade each."""
    state = fake.state
    state.allow_same_email = True
    course = None
    for i, user_uuid in enumerate(uuids):
        if i % PER_COURSE == 0:
            course = state.add_course(f"Course {i // PER_COURSE}")
        assert course is not None
        user = state.add_user(f"learner{i}", "Learner", str(i), idnumber=user_uuid)
        state.enrol(course["id"], user["id"])
        state.complete(course["id"], user["id"], 100 + course["id"], at=1_764_000_000)
        state.complete(course["id"], user["id"], 200 + course["id"], modname="quiz", state=2, at=1_764_000_000)
        state.grade(course["id"], user["id"], "Quiz", float(i % 10), at=1_764_000_000)


def seed_brightspace(shape: Any, uuids: list[str]) -> None:
    """Users with OrgDefinedId = uuid, course offerings of PER_COURSE learners, a graded grade object each."""
    fake = shape.fake
    ou = gid = 0
    for i, user_uuid in enumerate(uuids):
        if i % PER_COURSE == 0:
            ou = int(fake.add_course(f"Course {i // PER_COURSE}")["Identifier"])
            gid = fake.add_grade(ou, "Quiz")
        user = fake.add_user("Learner", str(i), org_defined_id=user_uuid, user_name=f"learner{i}")
        fake.enroll(ou, user["UserId"])
        fake.set_grade(ou, gid, user["UserId"], float(i % 10))


SEEDERS: dict[str, Callable[[Any, list[str]], None]] = {
    "canvas": seed_canvas, "moodle": seed_moodle, "brightspace": seed_brightspace,
}


def seed_appliance(db_path: Path, key_file: Path, kind: Upstream, base_url: str, uuids: list[str]) -> None:
    """The provider (pull only) and the local learners the upstream users match."""
    vault = Vault(load_or_create_key(key_file))
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute(
            "INSERT INTO providers (id, type, name, base_url, account_id, credentials, push_roster)"
            " VALUES (1, ?, ?, ?, ?, ?, 0)",
            (kind.type, kind.name, base_url, kind.account_id, vault.seal(kind.credentials)),
        )
        conn.executemany(
            "INSERT INTO users (uuid, username, username_key, first_name, last_name, facility_id, role)"
            " VALUES (?, ?, ?, 'Learner', ?, 1, 'learner')",
            [(u, f"learner{i}", username_key(f"learner{i}"), str(i)) for i, u in enumerate(uuids)],
        )
    conn.close()


async def bench(name: str, users: int) -> dict[str, Any]:
    """One connector: seed, start the daemon, run one pull, measure."""
    kind = UPSTREAMS[name]
    fake = await kind.start()
    uuids = [str(uuid.uuid4()) for _ in range(users)]
    started = time.monotonic()
    SEEDERS[name](fake, uuids)
    print(f"{name}: fake seeded with {users:,} users in {time.monotonic() - started:.1f}s")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            config = write_config(root, SYNC_TOML)
            await asyncio.to_thread(
                subprocess.run, [sys.executable, "-m", "appliance", "migrate", "--config", str(config)],
                check=True, capture_output=True, cwd=root,
            )
            db_path = root / "var" / "appliance.db"
            await asyncio.to_thread(seed_appliance, db_path, root / "var" / "secrets" / "sync.key", kind,
                                    fake.base_url, uuids)
            daemon = await asyncio.to_thread(start_ready, root, config)
            sampler = RssSampler(daemon.pid)
            sampler.start()
            try:
                await asyncio.sleep(2.5)  # the engine starts the provider's worker (and its first probe)
                fake.requests.clear()
                conn = sqlite3.connect(db_path, timeout=30)
                with conn:
                    run_id = conn.execute(
                        "INSERT INTO sync_runs (provider_id, job, trigger) VALUES (1, 'pull', 'manual')"
                    ).lastrowid
                conn.close()
                pull_start = time.monotonic()
                finished = f"SELECT state IN ('succeeded', 'failed') FROM sync_runs WHERE id = {run_id}"
                await wait_for(lambda: scalar(db_path, finished) == 1, timeout=1800, interval=0.2)
                seconds = time.monotonic() - pull_start
                ok = scalar(db_path, f"SELECT state = 'succeeded' FROM sync_runs WHERE id = {run_id}") == 1
                result = {
                    "connector": name,
                    "ok": ok,
                    "seconds": seconds,
                    "requests": sum(fake.requests.values()),
                    "users": scalar(db_path, "SELECT COUNT(*) FROM provider_user_mappings WHERE user_id IS NOT NULL"),
                    "enrollments": scalar(db_path, "SELECT COUNT(*) FROM enrollments"),
                    "milestones": scalar(db_path, "SELECT COUNT(*) FROM milestones"),
                    "rss_mib": sampler.peak_primary / 2**20,
                    "nats_mib": sampler.peak_nats / 2**20,
                }
            finally:
                sampler.stop_flag.set()
                await asyncio.to_thread(daemon.stop)
    finally:
        await fake.stop()
    verdict = "OK" if result["ok"] and result["seconds"] < 60 and result["rss_mib"] < 200 else "MISSED"
    print(
        f"{name}: pull {'succeeded' if result['ok'] else 'FAILED'} in {result['seconds']:.1f}s;"
        f" {result['requests']:,} requests; matched users {result['users']:,}, enrollments"
        f" {result['enrollments']:,}, milestones {result['milestones']:,}; peak RSS primary"
        f" {result['rss_mib']:.0f} MiB (nats-server {result['nats_mib']:.0f} MiB)"
        f" [target < 60 s, < 200 MB: {verdict}]"
    )
    return result


async def main(short: bool, only: list[str]) -> None:
    users = 2_000 if short else 10_000
    for name in only:
        await bench(name, users)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="2,000 users per connector")
    parser.add_argument("--only", default=",".join(SEEDERS), help="comma-separated connectors (default: all)")
    args = parser.parse_args()
    asyncio.run(main(args.short, [n for n in args.only.split(",") if n]))
