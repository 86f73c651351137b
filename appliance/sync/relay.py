"""The outbox relay: unpublished outbox rows → JetStream (Nats-Msg-Id = row id), then published_at."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3

from appliance.bus.client import Bus
from appliance.core.clock import Clock
from appliance.db.database import Database
from appliance.sync import metrics
from appliance.sync.streams import outbox_subject

log = logging.getLogger(__name__)
PUBLISH_CONCURRENCY = 64


class OutboxRelay:
    """Publishes in id order; a crash between publish and marking only causes a deduplicated re-publish."""

    def __init__(self, db: Database, bus: Bus, clock: Clock, *, batch: int, interval_s: float) -> None:
        self.db, self.bus, self.clock = db, bus, clock
        self.batch, self.interval_s = batch, interval_s
        self.wake = asyncio.Event()
        self._failing = False

    async def run(self) -> None:
        """Relay forever; NATS outages are waited out (the supervisor restarts the server)."""
        while True:
            try:
                moved = await self.relay_once()
                if self._failing:
                    log.info("outbox relay recovered")
                    self._failing = False
            except Exception as exc:  # NATS down or restarting, DB busy: keep the rows, try again
                moved = 0
                self._note_failure(exc)
            if moved < self.batch:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.interval_s if not self._failing else 1.0)

    def _note_failure(self, exc: BaseException) -> None:
        if not self._failing:
            log.warning("outbox relay cannot publish (%r); retrying", exc)
        self._failing = True
        metrics.RELAY_FAILURES.inc()

    async def relay_once(self) -> int:
        """Publish one batch of unpublished rows; returns how many were marked published."""
        rows = await self.db.fetchall(
            "SELECT id, topic, aggregate_id, payload, created_at FROM outbox WHERE published_at IS NULL"
            " ORDER BY id LIMIT ?",
            (self.batch,),
        )
        if not rows:
            return 0
        gate = asyncio.Semaphore(PUBLISH_CONCURRENCY)

        async def publish(row: sqlite3.Row) -> None:
            body = {
                "id": row["id"],
                "topic": row["topic"],
                "aggregate_id": row["aggregate_id"],
                "payload": json.loads(row["payload"]),
                "created_at": row["created_at"],
            }
            async with gate:
                await self.bus.publish(outbox_subject(row["topic"]), json.dumps(body).encode(), msg_id=str(row["id"]))

        # A TaskGroup cancels the rest when one publish fails; the whole batch is retried (deduplicated).
        async with asyncio.TaskGroup() as group:
            for row in rows:
                group.create_task(publish(row))
        ids = [row["id"] for row in rows]
        now = self.clock.iso_now()
        async with self.db.transaction() as tx:
            await tx.executemany("UPDATE outbox SET published_at = ? WHERE id = ?", [(now, i) for i in ids])
        metrics.RELAYED.inc(len(ids))
        return len(ids)
