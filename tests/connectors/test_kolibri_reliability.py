"""The engine's guarantees against the real Kolibri: a flapping uplink and kill -9 of the daemon mid-push
lose nothing and duplicate nothing upstream."""

import asyncio
import random
import sqlite3
import uuid
from collections import Counter
from pathlib import Path

import pytest

from appliance.keys import DB
from tests.connectors.kolibri_helpers import add_kolibri, queue_empty
from tests.killnine import kill_tree, migrated, seed_learners, seed_provider, settled, start_ready
from tests.realkolibri import KolibriAdmin, RealKolibri, TcpRelay
from tests.sync.helpers import as_user, create_learner, wait_until

pytestmark = pytest.mark.slow


async def kolibri_owners(kolibri: RealKolibri, sfx: str) -> Counter:
    """How many live Kolibri accounts carry each appliance uuid, among usernames holding `sfx`."""
    async with KolibriAdmin(kolibri) as k:
        users = await k.users(search=sfx)
    return Counter(u["id_number"] for u in users if u["id_number"])


async def test_flapping_uplink_delivers_every_learner_and_membership_exactly_once(admin, real_kolibri):
    client, admin_user = admin
    db = client.app[DB]
    sfx = uuid.uuid4().hex[:6]
    async with KolibriAdmin(real_kolibri) as k:
        room = await k.create_classroom(f"Flap {sfx}")
    relay = await TcpRelay(real_kolibri.port).start()
    try:
        provider = await add_kolibri(client, admin_user, relay.base_url,
                                     {**real_kolibri.credentials, "facility": real_kolibri.facility_id})
        course_id = (await db.execute("INSERT INTO courses (provider_id, external_id, name) VALUES (?, ?, ?)",
                                      (provider["id"], room["id"], "Flap"))).lastrowid
        learners = [await create_learner(client, username=f"fl.{sfx}.{i}") for i in range(10)]

        async def flap() -> None:
            for _ in range(8):  # 16 s: the link is cut and restored every second
                relay.cut()
                await asyncio.sleep(1.0)
                relay.restore()
                await asyncio.sleep(1.0)

        flapping = asyncio.ensure_future(flap())
        enrolled = []
        while not flapping.done():  # keep queueing while it flaps
            learners.append(await create_learner(client, username=f"fl.{sfx}.{len(learners)}"))
            if len(learners) % 3 == 0:
                resp = await client.post(f"/api/v1/courses/{course_id}/enrollments",
                                         json={"user_id": learners[-1]["id"]}, headers=as_user(admin_user))
                assert resp.status == 201, await resp.text()
                enrolled.append(learners[-1])
            await asyncio.sleep(0.4)
        await flapping
        await wait_until(lambda: queue_empty(client, admin_user), timeout=180, interval=0.5)
    finally:
        await relay.stop()
    assert relay.cuts == 8
    owners = await kolibri_owners(real_kolibri, sfx)
    assert set(owners) == {lr["uuid"] for lr in learners}  # none lost
    assert max(owners.values()) == 1  # none duplicated
    async with KolibriAdmin(real_kolibri) as k:
        members = await k.memberships(room["id"])
        ids = {u["id_number"]: u["id"] for u in await k.users(search=sfx)}
    assert Counter(m["user"] for m in members) == Counter(ids[lr["uuid"]] for lr in enrolled)
    assert await db.fetchval("SELECT COUNT(*) FROM dead_letters") == 0


LEARNERS = 60
SYNC_TOML = """[sync]
relay_interval_s = 0.05
backoff_initial_s = 0.05
backoff_max_s = 0.5
probe_timeout_s = 2.0
status_interval_s = 0.5
scheduler_tick_s = 3600.0
ack_wait_s = 5.0
push_batch = 4
"""
# push_batch = 4: settlements reach the ledger every few learners, so a kill lands between "sent" and
# "settled" of some of them (Kolibri takes a fraction of a second per account: it hashes a password).


def seed(db_path: Path, key_file: Path, kolibri: RealKolibri, sfx: str) -> list[str]:
    """A Kolibri provider and LEARNERS learners, each with its outbox row, written as the daemon would."""
    conn = sqlite3.connect(db_path)
    with conn:
        seed_provider(conn, key_file, "kolibri", "Kolibri", kolibri.base_url,
                      {**kolibri.credentials, "facility": kolibri.facility_id})
        uuids = seed_learners(conn, [f"k9.{sfx}.{i}" for i in range(LEARNERS)])
    conn.close()
    return uuids


async def test_kill_dash_nine_mid_push_loses_and_duplicates_nothing_in_kolibri(tmp_path, real_kolibri):
    sfx = uuid.uuid4().hex[:6]
    config, db_path, key_file = await migrated(tmp_path, SYNC_TOML)
    uuids = await asyncio.to_thread(seed, db_path, key_file, real_kolibri, sfx)
    rng = random.Random(12)
    kills, mid_push, progress, unsettled = 0, 0, 0, 0
    while kills < 5:
        daemon = await asyncio.to_thread(start_ready, tmp_path, config)
        try:
            # Kill while pushes are flowing: once this life has settled a few more (1-5, then up to 0.2 s).
            # Counted, not timed: on a fast machine a 1.5 s wait let a life finish every push first, and
            # the kill then hit nothing.
            target = progress + rng.randint(1, 5)
            async with asyncio.timeout(90):
                while await asyncio.to_thread(settled, db_path) < target:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(rng.uniform(0.0, 0.2))
        finally:
            await asyncio.to_thread(kill_tree, daemon)  # SIGKILL: no clean shutdown
        kills += 1
        progress = await asyncio.to_thread(settled, db_path)
        mid_push += 0 < progress < LEARNERS
        upstream = sum((await kolibri_owners(real_kolibri, sfx)).values())
        unsettled += upstream > progress  # a create reached Kolibri, its settlement died with the daemon
        print(f"kill {kills}: {progress} settled, {upstream} in Kolibri")
        if progress >= LEARNERS:
            break
    assert mid_push >= 3  # the kills really hit a push in progress
    assert unsettled >= 1  # and at least one cut a create off from its settlement
    daemon = await asyncio.to_thread(start_ready, tmp_path, config)
    try:
        async with asyncio.timeout(240):
            while await asyncio.to_thread(settled, db_path) < LEARNERS:
                await asyncio.sleep(0.5)
    finally:
        await asyncio.to_thread(daemon.stop)
    owners = await kolibri_owners(real_kolibri, sfx)
    assert set(owners) == set(uuids)  # none lost
    assert max(owners.values()) == 1  # none duplicated
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM push_deliveries WHERE state = 'done'").fetchone()[0] == LEARNERS
    finally:
        conn.close()


PROGRESS_TOML = """[sync]
backoff_initial_s = 0.05
backoff_max_s = 0.5
probe_timeout_s = 2.0
status_interval_s = 0.5
scheduler_tick_s = 3600.0
"""
PROGRESS_LEARNERS = 30
CHANNEL = "c0ffee00" * 4


def content(i: int) -> str:
    return f"{i:032x}"


def queue_runs(db_path: Path, provider_id: int) -> None:
    """A pull then a report, unless runs are still waiting (a killed run goes back to the queue itself)."""
    conn = sqlite3.connect(db_path, timeout=10)
    with conn:
        if not conn.execute("SELECT COUNT(*) FROM sync_runs WHERE state IN ('queued', 'running')").fetchone()[0]:
            for job in ("pull", "report"):
                conn.execute("INSERT INTO sync_runs (provider_id, job, trigger) VALUES (?, ?, 'manual')",
                             (provider_id, job))
    conn.close()


def query(db_path: Path, sql: str, params: tuple = ()) -> list[tuple]:
    conn = sqlite3.connect(db_path, timeout=10)
    try:
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]
    finally:
        conn.close()


async def wait_running(db_path: Path, job: str | None, timeout: float = 60.0) -> None:
    """Until a run (of this job, if named) is running."""
    sql = "SELECT COUNT(*) FROM sync_runs WHERE state = 'running'" + (" AND job = ?" if job else "")
    async with asyncio.timeout(timeout):
        while not (await asyncio.to_thread(query, db_path, sql, (job,) if job else ()))[0][0]:
            await asyncio.sleep(0.05)


async def test_kill_dash_nine_during_pulls_and_reports_counts_progress_exactly_once(tmp_path, real_kolibri):
    sfx = uuid.uuid4().hex[:6]
    names = [f"kp_{sfx}_{i}" for i in range(PROGRESS_LEARNERS)]
    async with KolibriAdmin(real_kolibri) as k:
        kusers = [await k.create_user(n) for n in names]
        room = await k.create_classroom(f"Crash {sfx}")
        for ku in kusers:
            await k.add_member(ku["id"], room["id"])
        await k.create_lesson(room["id"], "Unit", [(CHANNEL, content(i)) for i in (1, 2, 3)])
    rows = []
    for i, name in enumerate(names):
        rows += [
            {"username": name, "content_id": content(1), "channel_id": CHANNEL, "time_spent": 60.0 + i,
             "progress": 1.0, "completed": True},
            {"username": name, "content_id": content(2), "channel_id": CHANNEL, "time_spent": 10.0,
             "progress": 0.5, "kind": "exercise"},
            {"username": name, "content_id": content(9), "channel_id": CHANNEL, "time_spent": 1000.0,
             "progress": 1.0, "completed": True},  # in no lesson of the classroom: counts for no course
        ]
    await asyncio.to_thread(real_kolibri.seed_progress, rows)
    config, db_path, key_file = await migrated(tmp_path, PROGRESS_TOML)

    def seed_appliance() -> int:
        conn = sqlite3.connect(db_path)
        with conn:
            pid = seed_provider(conn, key_file, "kolibri", "Kolibri", real_kolibri.base_url,
                                {**real_kolibri.credentials, "facility": real_kolibri.facility_id}, push_roster=False)
            seed_learners(conn, names, outbox=False)  # matched to the Kolibri accounts by username
        conn.close()
        return pid

    pid = await asyncio.to_thread(seed_appliance)
    rng = random.Random(21)
    hits: list[tuple] = []
    for life in range(6):
        await asyncio.to_thread(queue_runs, db_path, pid)
        daemon = await asyncio.to_thread(start_ready, tmp_path, config)
        try:
            # Kill inside a run, not at a random moment that may fall between runs: wait until one is running
            # (a report every other life, the long one), then let it get a random way in.
            await wait_running(db_path, "report" if life % 2 else None)
            await asyncio.sleep(rng.uniform(0.0, 0.4))
        finally:
            await asyncio.to_thread(kill_tree, daemon)  # SIGKILL: no clean shutdown
        running = await asyncio.to_thread(query, db_path, "SELECT job, stage FROM sync_runs WHERE state = 'running'")
        hits += running
        done = await asyncio.to_thread(query, db_path, "SELECT COUNT(*) FROM sync_runs WHERE state = 'succeeded'")
        print(f"kill {life + 1}: running {running}, {done[0][0]} runs succeeded so far")
    assert len(hits) >= 3 and "report" in {job for job, _ in hits}  # kills cut runs short (reports: the long ones)
    await asyncio.to_thread(queue_runs, db_path, pid)
    daemon = await asyncio.to_thread(start_ready, tmp_path, config)
    try:
        async with asyncio.timeout(180):
            while (await asyncio.to_thread(
                    query, db_path, "SELECT COUNT(*) FROM sync_runs WHERE state IN ('queued', 'running')"))[0][0]:
                await asyncio.sleep(0.5)
        # One more pull and report with nothing new upstream: they must add nothing.
        await asyncio.to_thread(queue_runs, db_path, pid)
        async with asyncio.timeout(180):
            while (await asyncio.to_thread(
                    query, db_path, "SELECT COUNT(*) FROM sync_runs WHERE state IN ('queued', 'running')"))[0][0]:
                await asyncio.sleep(0.5)
    finally:
        await asyncio.to_thread(daemon.stop)
    last = await asyncio.to_thread(query, db_path, "SELECT job, state FROM sync_runs ORDER BY id DESC LIMIT 2")
    assert last == [("report", "succeeded"), ("pull", "succeeded")]
    users = dict(await asyncio.to_thread(query, db_path, "SELECT username, id FROM users"))
    course = await asyncio.to_thread(query, db_path, "SELECT id, total_milestones FROM courses WHERE external_id = ?",
                                     (room["id"],))
    assert course[0][1] == 3
    milestones = await asyncio.to_thread(
        query, db_path, "SELECT user_id, external_id, is_completed, score FROM milestones WHERE course_id = ?"
        " AND type = 'resource_completion' ORDER BY user_id, external_id", (course[0][0],))
    assert milestones == sorted(
        m for name in names for m in (
            (users[name], f"{CHANNEL}:{content(1)}#{users[name]}", 1, 1.0),
            (users[name], f"{CHANNEL}:{content(2)}#{users[name]}", 0, 0.5)))
    # Time spent: one observation per learner, the sum of the two lesson resources; none counted twice.
    activities = await asyncio.to_thread(
        query, db_path, "SELECT user_id, total_time, time_delta FROM activities WHERE course_id = ? ORDER BY user_id",
        (course[0][0],))
    assert activities == sorted((users[n], 70 + i, 70 + i) for i, n in enumerate(names))
    stored = await asyncio.to_thread(query, db_path, "SELECT COUNT(*) FROM learner_progress WHERE provider_id = ?",
                                     (pid,))
    assert stored[0][0] == 3 * PROGRESS_LEARNERS
