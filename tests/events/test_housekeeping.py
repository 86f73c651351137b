"""Fan-out position and pruning on a real database with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from appliance.core.clock import FakeClock, iso
from appliance.db.database import Database
from appliance.db.events import EventType, add_event
from appliance.db.migrate import migrate
from appliance.events.relay import Fanout, prune
from appliance.events.settings import EventsSettings, WebhookSettings

START = datetime(2026, 1, 1, tzinfo=UTC)


async def test_pruning_drops_old_rows_and_never_reuses_an_event_position(tmp_path: Path) -> None:
    migrate(tmp_path / "a.db")
    db = Database(tmp_path / "a.db")
    await db.open()
    try:
        clock = FakeClock(START)
        old = iso(START - timedelta(days=40))
        await db.execute("INSERT INTO webhooks (url, secret, created_at) VALUES ('http://x.example/', 'v1:x', ?)",
                         (old,))
        await db.execute("INSERT INTO webhooks (url, secret, enabled, created_at)"
                         " VALUES ('http://y.example/', 'v1:y', 0, ?)", (old,))
        async with db.transaction() as tx:
            for _ in range(3):
                await add_event(tx, EventType.LIBRARY_ADDED, {})
        await db.execute("UPDATE events SET created_at = ?, published_at = ?", (old, old))
        fanout = Fanout(db, clock, WebhookSettings(), interval_s=1)
        assert await fanout.fanout_once() == 3
        assert await db.fetchval("SELECT COUNT(*) FROM webhook_deliveries") == 3  # the enabled webhook only
        # a disabled webhook's delivery past its window is given up; finished old rows are pruned
        await db.execute("INSERT INTO webhook_deliveries (webhook_id, event_seq, next_attempt_at, expires_at)"
                         " VALUES (2, 1, ?, ?)", (old, old))
        await db.execute("UPDATE webhook_deliveries SET state = 'succeeded', finished_at = ? WHERE webhook_id = 1",
                         (old,))
        await prune(db, clock, EventsSettings(retention_days=30), WebhookSettings())
        assert await db.fetchval("SELECT state FROM webhook_deliveries WHERE webhook_id = 2") == "failed"
        assert await db.fetchval("SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = 1") == 0
        assert await db.fetchval("SELECT COUNT(*) FROM events") == 1  # still referenced by the failed delivery
        await db.execute("DELETE FROM webhook_deliveries")
        await prune(db, clock, EventsSettings(retention_days=30), WebhookSettings())
        assert await db.fetchval("SELECT COUNT(*) FROM events") == 0
        # a new event after everything was pruned gets a fresh position and is fanned out
        async with db.transaction() as tx:
            await add_event(tx, EventType.USER_CREATED, {})
        assert await db.fetchval("SELECT seq FROM events") == 4
        assert await fanout.fanout_once() == 1
        assert await db.fetchval("SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = 1") == 1
    finally:
        await db.close()
