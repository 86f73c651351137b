"""Scheduler: one run per window (double ticks and restarts included), one catch-up for missed windows."""

from datetime import UTC, datetime

from appliance.core.clock import FakeClock
from appliance.keys import DB
from appliance.sync.cron import Cron
from appliance.sync.scheduler import Schedule, recover_interrupted, tick
from tests.sync.helpers import as_user

SCHEDULE = Schedule(Cron.parse("0 * * * *"), Cron.parse("0 3 * * *"))


async def test_windows_run_once_and_missed_windows_catch_up_once(sync_client, make_user):
    client = await sync_client(enabled=False)  # drive the scheduler by hand with a fake clock
    admin = await make_user(client, role="system_admin")
    db = client.app[DB]
    await db.execute("UPDATE facilities SET timezone = 'America/Chicago' WHERE id = 1")
    resp = await client.post(
        "/api/v1/providers",
        headers=as_user(admin),
        json={
            "type": "canvas_oss",
            "name": "C",
            "base_url": "http://127.0.0.1:9",
            "credentials": {"access_token": "t"},
        },
    )
    assert resp.status == 201
    await db.execute("UPDATE providers SET created_at = '2026-02-01T00:00:00.000Z'")
    clock = FakeClock(datetime(2026, 3, 1, 10, 20, tzinfo=UTC))

    queued = await tick(db, clock, SCHEDULE, startup=True)
    windows = {r["window_id"]: r["trigger"] for r in await db.fetchall("SELECT window_id, trigger FROM sync_runs")}
    # The hourly pull of 10:00 UTC and the 03:00 Chicago (09:00 UTC) report were missed: one catch-up each.
    assert windows == {"1:pull:2026-03-01T10:00:00.000Z": "catch_up", "1:report:2026-03-01T09:00:00.000Z": "catch_up"}
    assert len(queued) == 2
    assert await tick(db, clock, SCHEDULE) == []  # a double tick
    assert await tick(db, clock, SCHEDULE, startup=True) == []  # a restart
    clock.advance(40 * 60)  # 11:00
    assert len(await tick(db, clock, SCHEDULE)) == 1
    assert await tick(db, clock, SCHEDULE) == []
    clock.advance(5 * 3600)  # down for five hours: only the latest window runs, once
    queued = await tick(db, clock, SCHEDULE, startup=True)
    assert len(queued) == 1
    assert (
        await db.fetchval("SELECT window_id FROM sync_runs WHERE id = ?", (queued[0],))
        == "1:pull:2026-03-01T16:00:00.000Z"
    )
    await db.execute("UPDATE sync_runs SET state = 'running' WHERE id = ?", (queued[0],))
    assert await recover_interrupted(db) == 1
    await db.execute("UPDATE providers SET state = 'disabled'")
    clock.advance(3600)
    assert await tick(db, clock, SCHEDULE) == []
