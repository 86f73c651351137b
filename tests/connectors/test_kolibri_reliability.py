"""The engine's guarantees against the real Kolibri: a flapping uplink and kill -9 of the daemon mid-push
lose nothing and duplicate nothing upstream."""

import asyncio
import json
import random
import sqlite3
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest

from appliance.auth.usernames import username_key
from appliance.keys import DB
from appliance.sync.secrets import Vault, load_or_create_key
from tests.connectors.kolibri_helpers import add_kolibri, queue_empty
from tests.daemon import write_config
from tests.realkolibri import KolibriAdmin, RealKolibri, TcpRelay
from tests.sync.helpers import as_user, create_learner, wait_until
from tests.sync.test_crash import kill_tree, settled, start_ready

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
    vault = Vault(load_or_create_key(key_file))
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute(
            "INSERT INTO providers (type, name, base_url, credentials) VALUES ('kolibri', 'Kolibri', ?, ?)",
            (kolibri.base_url, vault.seal({**kolibri.credentials, "facility": kolibri.facility_id})),
        )
        uuids = []
        for i in range(LEARNERS):
            user_uuid, name = str(uuid.uuid4()), f"k9.{sfx}.{i}"
            uuids.append(user_uuid)
            conn.execute(
                "INSERT INTO users (uuid, username, username_key, first_name, last_name, facility_id, role)"
                " VALUES (?, ?, ?, 'Crash', ?, 1, 'learner')",
                (user_uuid, name, username_key(name), str(i)),
            )
            payload = {"uuid": user_uuid, "username": name, "role": "learner", "facility_id": 1,
                       "first_name": "Crash", "last_name": str(i)}
            conn.execute("INSERT INTO outbox (topic, aggregate_id, payload) VALUES ('roster.user.created', ?, ?)",
                         (user_uuid, json.dumps(payload)))
    conn.close()
    return uuids


async def test_kill_dash_nine_mid_push_loses_and_duplicates_nothing_in_kolibri(tmp_path, real_kolibri):
    sfx = uuid.uuid4().hex[:6]
    config = write_config(tmp_path, SYNC_TOML)
    await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "appliance", "migrate", "--config", str(config)],
                            check=True, capture_output=True, cwd=tmp_path)
    db_path = tmp_path / "var" / "appliance.db"
    uuids = await asyncio.to_thread(seed, db_path, tmp_path / "var" / "secrets" / "sync.key", real_kolibri, sfx)
    rng = random.Random(12)
    kills, mid_push, progress, unsettled = 0, 0, 0, 0
    while kills < 5:
        daemon = await asyncio.to_thread(start_ready, tmp_path, config)
        try:
            # Kill while pushes are flowing: once this life has settled something, at a random moment.
            async with asyncio.timeout(90):
                while await asyncio.to_thread(settled, db_path) <= progress:
                    await asyncio.sleep(0.2)
            await asyncio.sleep(rng.uniform(0.0, 1.5))
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
