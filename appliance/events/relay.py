"""The events outbox: unpublished rows → JetStream, new rows → webhook deliveries, and housekeeping.

Publishing and fan-out keep separate positions, so webhooks keep flowing while NATS restarts and the
stream keeps receiving while no webhook exists. Both are idempotent: a re-publish after a crash is
dropped by JetStream (Nats-Msg-Id = event id) and a re-fan-out by the UNIQUE (webhook, event) key.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import datetime, timedelta

from appliance.bus import subjects
from appliance.bus.client import Bus
from appliance.core.clock import Clock, iso
from appliance.db.database import Database
from appliance.db.events import EventType
from appliance.events import metrics
from appliance.events.settings import EventsSettings, WebhookSettings

log = logging.getLogger(__name__)
FANOUT_CURSOR = "events.fanout_seq"
PUBLISH_CONCURRENCY = 64
FANOUT_BATCH = 1000
PRUNE_INTERVAL_S = 600.0
PING = EventType.WEBHOOK_PING.value


class EventRelay:
    """Publishes unpublished events in seq order to appliance.events.<type>."""

    def __init__(self, db: Database, bus: Bus, clock: Clock, settings: EventsSettings) -> None:
        self.db, self.bus, self.clock, self.settings = db, bus, clock, settings
        self.wake = asyncio.Event()
        self._failing = False

    async def run(self) -> None:
        """Relay forever; NATS outages are waited out (the events stay in SQLite)."""
        while True:
            try:
                moved = await self.relay_once()
                if self._failing:
                    log.info("event relay recovered")
                    self._failing = False
            except Exception as exc:  # NATS down or restarting, DB busy: keep the rows, try again
                moved = 0
                if not self._failing:
                    log.warning("event relay cannot publish (%r); retrying", exc)
                self._failing = True
                metrics.RELAY_FAILURES.inc()
            if moved < self.settings.relay_batch:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), 1.0 if self._failing else self.settings.relay_interval_s)

    async def relay_once(self) -> int:
        """Publish one batch; returns how many events were marked published."""
        rows = await self.db.fetchall(
            "SELECT seq, id, type, data, created_at FROM events WHERE published_at IS NULL ORDER BY seq LIMIT ?",
            (self.settings.relay_batch,),
        )
        if not rows:
            return 0
        gate = asyncio.Semaphore(PUBLISH_CONCURRENCY)

        async def publish(event_id: str, event_type: str, data: str, created_at: str) -> None:
            body = (f'{{"id":{json.dumps(event_id)},"type":{json.dumps(event_type)},'
                    f'"timestamp":{json.dumps(created_at)},"data":{data}}}').encode()
            async with gate:
                await self.bus.publish(subjects.domain_event(event_type), body, msg_id=event_id)

        async with asyncio.TaskGroup() as group:
            for row in rows:
                group.create_task(publish(row["id"], row["type"], row["data"], row["created_at"]))
        now = self.clock.iso_now()
        async with self.db.transaction() as tx:
            await tx.executemany("UPDATE events SET published_at = ? WHERE seq = ?", [(now, r["seq"]) for r in rows])
        metrics.RELAYED.inc(len(rows))
        return len(rows)


class Fanout:
    """Turns each new event into one pending delivery per enabled webhook that subscribes to its type."""

    def __init__(self, db: Database, clock: Clock, settings: WebhookSettings, *, interval_s: float) -> None:
        self.db, self.clock, self.settings, self.interval_s = db, clock, settings, interval_s
        self.wake = asyncio.Event()
        self.delivered = asyncio.Event()  # set after a round that queued deliveries (wakes the dispatcher)
        self._position: int | None = None  # the last event seq fanned out (only this process moves it)

    async def run(self) -> None:
        """Fan out forever."""
        while True:
            moved = await self.fanout_once()
            if moved < FANOUT_BATCH:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.interval_s)

    async def fanout_once(self) -> int:
        """Handle the next batch of events after the cursor; returns how many events were looked at."""
        if self._position is None:
            found = await self.db.fetchval("SELECT value FROM settings WHERE key = ?", (FANOUT_CURSOR,))
            self._position = int(found) if found is not None else 0
        # Reads first (the read pool): an idle appliance never takes the write lock for nothing.
        events = await self.db.fetchall(
            "SELECT seq, type, created_at FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            (self._position, FANOUT_BATCH),
        )
        if not events:
            return 0
        hooks = [(h["id"], set(json.loads(h["events"])), h["created_at"])
                 for h in await self.db.fetchall("SELECT id, events, created_at FROM webhooks WHERE enabled = 1")]
        window = timedelta(seconds=self.settings.retry_window_s)
        now = self.clock.iso_now()
        rows = []
        for event in events:
            if event["type"] == PING:
                continue  # a ping is queued for its one webhook by the API
            expires = iso(datetime.fromisoformat(event["created_at"]) + window)
            for hook_id, wanted, created_at in hooks:
                # A webhook hears what happened after it was created, not the history before it.
                if event["created_at"] >= created_at and ("*" in wanted or event["type"] in wanted):
                    rows.append((hook_id, event["seq"], now, expires))
        async with self.db.transaction() as tx:
            if rows:
                # OR IGNORE: a webhook deleted meanwhile (foreign key) or a row already there (re-run after a crash)
                await tx.executemany(
                    "INSERT OR IGNORE INTO webhook_deliveries (webhook_id, event_seq, next_attempt_at, expires_at)"
                    " SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM webhooks WHERE id = ?1)",
                    rows,
                )
            await tx.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (FANOUT_CURSOR, str(events[-1]["seq"])),
            )
        self._position = int(events[-1]["seq"])
        if rows:
            metrics.FANNED_OUT.inc(len(rows))
            self.delivered.set()
        return len(events)


async def prune(db: Database, clock: Clock, events: EventsSettings, webhooks: WebhookSettings) -> None:
    """Give up deliveries of disabled webhooks past their window; drop old finished deliveries and events."""
    now = clock.now()
    cutoff = iso(now - timedelta(days=events.retention_days))
    async with db.transaction() as tx:
        await tx.execute(
            "UPDATE webhook_deliveries SET state = 'failed', last_error = 'retry window ended while the webhook was"
            " disabled', finished_at = ? WHERE state = 'pending' AND expires_at < ?"
            " AND webhook_id IN (SELECT id FROM webhooks WHERE enabled = 0)",
            (iso(now), iso(now)),
        )
        await tx.execute("DELETE FROM webhook_deliveries WHERE state != 'pending' AND finished_at < ?", (cutoff,))
        cur = await tx.execute("SELECT value FROM settings WHERE key = ?", (FANOUT_CURSOR,))
        found = await cur.fetchone()
        position = int(found[0]) if found else 0
        await tx.execute(
            "DELETE FROM events WHERE created_at < ? AND published_at IS NOT NULL AND (seq <= ? OR type = ?)"
            " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_seq = events.seq)",
            (cutoff, position, PING),
        )
    pending = await db.fetchval("SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'pending'")
    metrics.PENDING.set(pending or 0)


async def prune_forever(db: Database, clock: Clock, events: EventsSettings, webhooks: WebhookSettings) -> None:
    """Housekeeping every few minutes."""
    while True:
        await prune(db, clock, events, webhooks)
        await asyncio.sleep(PRUNE_INTERVAL_S)
