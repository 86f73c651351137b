"""The issue's reliability tests that run in-process: flapping uplink, nats-server killed, failing writes."""

import asyncio
import os
import signal
import sqlite3

import pytest

from appliance.keys import DB, NATS_SERVER
from tests.sync.helpers import as_user, create_learner, wait_until
from tests.sync.test_push import add_provider


async def queue_empty(client, user) -> bool:
    status = await (await client.get("/api/v1/sync/status", headers=as_user(user))).json()
    return all(p["queue_depth"] == 0 for p in status["data"]) and status["meta"]["unpublished_outbox"] == 0


async def add_course(client, provider, canvas, name="Course"):
    course = canvas.state.add_course(name)
    db = client.app[DB]
    result = await db.execute(
        "INSERT INTO courses (provider_id, external_id, name) VALUES (?, ?, ?)",
        (provider["id"], str(course["id"]), name),
    )
    return result.lastrowid, course["id"]


async def add_upstream_provider(client, user, kind, fake):
    resp = await client.post("/api/v1/providers", json=kind.provider_body(fake), headers=as_user(user))
    assert resp.status == 201, await resp.text()
    return (await resp.json())["data"]


@pytest.mark.slow
async def test_flapping_uplink_delivers_every_record_exactly_once(admin, upstream):
    client, user = admin
    kind, canvas = upstream  # `canvas` is whichever fake this run is against
    provider = await add_upstream_provider(client, user, kind, canvas)
    course_id, canvas_course = await add_course(client, provider, canvas)
    learners = [await create_learner(client) for _ in range(300)]
    canvas.slow(0.04)  # the drain spans the whole storm instead of finishing in the first up-window
    canvas.fail_share(0.2)

    async def flap() -> None:
        for i in range(15):  # 30 s: down and up every 2 s, alternating refused connections and 503s
            await canvas.down("refuse" if i % 2 == 0 else "503")
            await asyncio.sleep(1.0)
            await canvas.up()
            await asyncio.sleep(1.0)

    flapping = asyncio.ensure_future(flap())
    while not flapping.done():  # keep queueing while it flaps
        learners.append(await create_learner(client))
        if len(learners) % 3 == 0:
            resp = await client.post(
                f"/api/v1/courses/{course_id}/enrollments", json={"user_id": learners[-1]["id"]}, headers=as_user(user)
            )
            assert resp.status == 201
        await asyncio.sleep(0.25)
    await flapping
    canvas.fail_share(0.0)
    await wait_until(lambda: queue_empty(client, user), timeout=120, interval=0.5)

    enrolled = await client.app[DB].fetchval("SELECT COUNT(*) FROM enrollments")
    assert set(canvas.state.user_creates) == {lr["uuid"] for lr in learners}
    assert max(canvas.state.user_creates.values()) == 1
    assert len(canvas.state.enrollment_creates) == enrolled
    assert max(canvas.state.enrollment_creates.values()) == 1
    assert not canvas.state.rejected_writes  # no duplicate create ever reached Canvas
    assert sum(canvas.injected.values()) > 20  # the storm really happened
    dead = await client.app[DB].fetchval("SELECT COUNT(*) FROM dead_letters")
    assert dead == 0


@pytest.mark.slow
async def test_nats_server_killed_during_drain_is_restarted_and_drain_resumes(admin, upstream):
    client, user = admin
    kind, canvas = upstream
    await add_upstream_provider(client, user, kind, canvas)
    canvas.slow(0.01)
    learners = [await create_learner(client) for _ in range(150)]
    await wait_until(lambda: len(canvas.state.user_creates) >= 10)
    server = client.app[NATS_SERVER]
    first_pid = server.pid
    os.kill(first_pid, signal.SIGKILL)
    more = [await create_learner(client) for _ in range(30)]  # written while NATS is down
    await wait_until(lambda: server.pid not in (None, first_pid), timeout=30, message="nats-server restarted")
    await wait_until(lambda: queue_empty(client, user), timeout=90, interval=0.5)
    assert server.restarts >= 1
    assert set(canvas.state.user_creates) == {lr["uuid"] for lr in learners + more}
    assert max(canvas.state.user_creates.values()) == 1
    assert not canvas.state.rejected_writes


async def fill(writer, size: int) -> None:
    """Insert already-published filler outbox rows until the database refuses."""
    for _ in range(100_000):
        await writer.execute(
            "INSERT INTO outbox (topic, aggregate_id, payload, published_at) VALUES ('test.filler', 'x', ?, 'x')",
            ("x" * size,),
        )


@pytest.mark.parametrize("failure", ["read_only", "full"])
async def test_failing_write_leaves_no_half_change_and_no_orphan_outbox_row(admin, canvas, failure):
    client, user = admin
    provider = await add_provider(client, user, canvas)
    course_id, _ = await add_course(client, provider, canvas)
    learner = await create_learner(client)
    db = client.app[DB]
    before = (await db.fetchval("SELECT COUNT(*) FROM enrollments"), await db.fetchval("SELECT COUNT(*) FROM outbox"))
    writer = db._writer
    assert writer is not None
    if failure == "read_only":
        await writer.execute("PRAGMA query_only = ON")
    else:
        # The file may not grow by a single page, and the outbox's pages are packed with (already
        # published) rows, so the enrollment row may still fit but its outbox row cannot.
        pages = (await (await writer.execute("PRAGMA page_count")).fetchone())[0]
        await writer.execute(f"PRAGMA max_page_count = {pages}")
        for size in (2000, 200, 20, 1):
            with pytest.raises(sqlite3.OperationalError, match="full"):
                await fill(writer, size)
        before = (before[0], await db.fetchval("SELECT COUNT(*) FROM outbox"))
    try:
        resp = await client.post(
            f"/api/v1/courses/{course_id}/enrollments", json={"user_id": learner["id"]}, headers=as_user(user)
        )
        body = await resp.json()
        assert resp.status == 503
        assert body["error"]["code"] == "storage_unavailable"
        after = (
            await db.fetchval("SELECT COUNT(*) FROM enrollments"),
            await db.fetchval("SELECT COUNT(*) FROM outbox"),
        )
        assert after == before
    finally:
        await writer.execute("PRAGMA query_only = OFF")
        await writer.execute("PRAGMA max_page_count = 1073741823")
    resp = await client.post(
        f"/api/v1/courses/{course_id}/enrollments", json={"user_id": learner["id"]}, headers=as_user(user)
    )
    assert resp.status == 201
    orphans = await db.fetchval(
        "SELECT COUNT(*) FROM outbox o WHERE o.topic LIKE 'roster.enrollment.%' AND NOT EXISTS"
        " (SELECT 1 FROM enrollments e WHERE e.id = json_extract(o.payload, '$.enrollment_id'))"
    )
    assert orphans == 0
