"""Benchmark: pull 1,000 users with classrooms, memberships and progress from a real Kolibri.

Run by hand:  .venv/bin/python -m tests.bench.kolibri_pull [--short]

A fresh Kolibri (tests/realkolibri.py) is seeded through its own shell with N learners (1,000; short: 200),
N/50 classrooms of 50 learners each (each with one active lesson of 4 of the resources) and 5 content
summary logs per learner, so the report also counts lesson milestones and time per classroom. The appliance
holds a local account for each learner (same username, so every one is matched and its progress stored). The real daemon
then runs one pull (users, classrooms, memberships) and one report (progress through the CSV export task)
through a counting TCP relay. Prints the time of each, the HTTP requests made and the daemon's peak RSS.
Target: well under 60 s and 200 MB.
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
from tests.realkolibri import ADMIN_USER, RealKolibri, TcpRelay, start_kolibri
from tests.sync.test_crash import start_ready

SYNC_TOML = """[sync]
relay_interval_s = 0.05
probe_timeout_s = 5.0
status_interval_s = 2.0
scheduler_tick_s = 3600.0
per_page = 100
"""
LOGS_PER_LEARNER = 5
CLASS_SIZE = 50


def seed_kolibri(kolibri: RealKolibri, learners: int) -> None:
    """Learners, classrooms, memberships and summary logs written through Kolibri's models (fast: one hash)."""
    code = f"""
import datetime
from django.contrib.auth.hashers import make_password
from django.utils import timezone
from kolibri.core.auth.models import Classroom, Facility, FacilityUser, Membership
from kolibri.core.logger.models import ContentSummaryLog
from kolibri.core.lessons.models import Lesson
facility = Facility.get_default_facility()
password = make_password("learner-pass-1")
now = timezone.now()
rooms = [Classroom.objects.create(name=f"Bench class {{i}}", parent=facility)
         for i in range({learners} // {CLASS_SIZE})]
coach = FacilityUser.objects.get(username="{ADMIN_USER}")  # a lesson must have a creator
for room in rooms:  # each classroom's lesson assigns all but the last of the resources its learners use
    Lesson.objects.create(title="Bench lesson", collection=room, is_active=True, created_by=coach, resources=[
        {{"channel_id": "c0ffee00" * 4, "content_id": f"{{j:032x}}", "contentnode_id": f"{{j:032x}}"}}
        for j in range({LOGS_PER_LEARNER} - 1)])
for i in range({learners}):
    user = FacilityUser.objects.create(username=f"bench_{{i}}", full_name=f"Bench Learner {{i}}", facility=facility,
                                       password=password)
    Membership.objects.create(user=user, collection=rooms[i // {CLASS_SIZE}])
    for j in range({LOGS_PER_LEARNER}):
        end = now - datetime.timedelta(minutes=j)
        ContentSummaryLog.objects.create(
            user=user, content_id=f"{{j:032x}}", channel_id="c0ffee00" * 4, kind="video",
            start_timestamp=end - datetime.timedelta(minutes=10), end_timestamp=end,
            completion_timestamp=end if j % 2 == 0 else None, time_spent=60.0 * (j + 1),
            progress=1.0 if j % 2 == 0 else 0.5)
print("seeded", FacilityUser.objects.count())
"""
    print(kolibri.shell(code, timeout=1800).strip().splitlines()[-1])


def seed_appliance(db_path: Path, key_file: Path, base_url: str, kolibri: RealKolibri, learners: int) -> None:
    """The Kolibri provider (pull only) and one local learner per Kolibri learner."""
    vault = Vault(load_or_create_key(key_file))
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute(
            "INSERT INTO providers (id, type, name, base_url, credentials, push_roster) VALUES"
            " (1, 'kolibri', 'Kolibri', ?, ?, 0)",
            (base_url, vault.seal({**kolibri.credentials, "facility": kolibri.facility_id})),
        )
        conn.executemany(
            "INSERT INTO users (uuid, username, username_key, first_name, last_name, facility_id, role)"
            " VALUES (?, ?, ?, 'Bench', 'Learner', 1, 'learner')",
            [(str(uuid.uuid4()), f"bench_{i}", username_key(f"bench_{i}")) for i in range(learners)],
        )
    conn.close()


async def timed_run(db_path: Path, job: str) -> tuple[float, bool]:
    """Queue a run and wait until it finished: (seconds, succeeded)."""
    conn = sqlite3.connect(db_path, timeout=30)
    with conn:
        run_id = conn.execute("INSERT INTO sync_runs (provider_id, job, trigger) VALUES (1, ?, 'manual')",
                              (job,)).lastrowid
    conn.close()
    start = time.monotonic()
    query = f"SELECT state IN ('succeeded', 'failed') FROM sync_runs WHERE id = {run_id}"
    await wait_for(lambda: scalar(db_path, query) == 1, timeout=1800, interval=0.1)
    elapsed = time.monotonic() - start
    return elapsed, scalar(db_path, f"SELECT state = 'succeeded' FROM sync_runs WHERE id = {run_id}") == 1


async def main(short: bool) -> None:
    learners = 200 if short else 1000
    with tempfile.TemporaryDirectory(prefix="kolibri-bench-") as tmp:
        root = Path(tmp)
        started = time.monotonic()
        kolibri = await asyncio.to_thread(start_kolibri, root / "kolibri")
        print(f"Kolibri {kolibri.base_url} provisioned and started in {time.monotonic() - started:.0f}s")
        relay = await TcpRelay(kolibri.port).start()
        daemon = None
        try:
            started = time.monotonic()
            await asyncio.to_thread(seed_kolibri, kolibri, learners)
            print(f"seeded {learners:,} learners, {learners // CLASS_SIZE} classrooms,"
                  f" {learners * LOGS_PER_LEARNER:,} summary logs in {time.monotonic() - started:.0f}s")
            app_root = root / "appliance"
            app_root.mkdir()
            config = write_config(app_root, SYNC_TOML)
            await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "appliance", "migrate", "--config",
                                    str(config)], check=True, capture_output=True, cwd=app_root)
            db_path = app_root / "var" / "appliance.db"
            seed_appliance(db_path, app_root / "var" / "secrets" / "sync.key", relay.base_url, kolibri, learners)
            daemon = await asyncio.to_thread(start_ready, app_root, config)
            sampler = RssSampler(daemon.pid)
            sampler.start()
            await asyncio.sleep(3)  # the engine starts the provider and signs in
            before = relay.requests
            pull_s, pull_ok = await timed_run(db_path, "pull")
            pull_requests = relay.requests - before
            before = relay.requests
            report_s, report_ok = await timed_run(db_path, "report")
            report_requests = relay.requests - before
            sampler.stop_flag.set()
            mapped = scalar(db_path, "SELECT COUNT(*) FROM provider_user_mappings WHERE user_id IS NOT NULL")
            rooms = scalar(db_path, "SELECT COUNT(*) FROM courses")
            enrolled = scalar(db_path, "SELECT COUNT(*) FROM enrollments")
            progress = scalar(db_path, "SELECT COUNT(*) FROM learner_progress")
            milestones = scalar(db_path, "SELECT COUNT(*) FROM milestones")
            activities = scalar(db_path, "SELECT COUNT(*) FROM activities")
            print(f"pull:   {mapped:,} users matched, {rooms} classrooms, {enrolled:,} memberships in {pull_s:.1f}s"
                  f" ({'succeeded' if pull_ok else 'FAILED'}), {pull_requests} requests")
            print(f"report: {progress:,} progress rows (CSV export task), {milestones:,} lesson milestones and"
                  f" {activities:,} time totals per classroom in {report_s:.1f}s"
                  f" ({'succeeded' if report_ok else 'FAILED'}), {report_requests} requests")
            print(f"total:  {pull_s + report_s:.1f}s (target < 60 s), {pull_requests + report_requests} requests,"
                  f" peak RSS of the daemon's primary {sampler.peak_primary / 2**20:.0f} MiB (target < 200 MB)")
        finally:
            if daemon is not None:
                await asyncio.to_thread(daemon.stop)
            await relay.stop()
            kolibri.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="200 learners instead of 1,000")
    args = parser.parse_args()
    asyncio.run(main(args.short))
