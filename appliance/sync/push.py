"""A provider's durable JetStream consumer: drain queued records upstream exactly once, in per-learner order."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, cast

import nats.errors
from nats.aio.msg import Msg

from appliance.bus.client import Bus
from appliance.connectors.contract import (
    BatchEnrollmentImport,
    BatchUserImport,
    Connector,
    PushOutcome,
    PushResult,
)
from appliance.connectors.errors import AuthFailed, Rejected, Throttled, Transient, UpstreamError
from appliance.core.clock import Clock
from appliance.db.database import Database
from appliance.db.events import EventType, add_event
from appliance.db.outbox import OutboxTopic
from appliance.sync import metrics
from appliance.sync.apply import Context, Record, apply, batchable
from appliance.sync.model import DeliveryState, Provider
from appliance.sync.store import dumps, ledger_states, users_by_uuid
from appliance.sync.streams import STREAM, ensure_consumer
from appliance.sync.uplink import UplinkGate

log = logging.getLogger(__name__)
MAX_THROTTLE_RETRIES = 20
NAK_DELAY_S = 1.0


@dataclass
class Settlement:
    """What to write to the ledger for one record."""

    record: Record
    state: DeliveryState
    result: PushResult | None = None
    error: UpstreamError | Exception | None = None


class Pusher:
    """Fetch → settle each record (ordered per aggregate, bounded concurrency) → ledger → ack."""

    def __init__(
        self,
        db: Database,
        bus: Bus,
        clock: Clock,
        provider: Provider,
        connector: Connector,
        gate: UplinkGate,
        *,
        batch: int,
        concurrency: int,
        ack_wait_s: float,
        throttle_floor: float = 0.0,
        sis_batch_min: int = 0,
        enrollment_batch_min: int = 0,
    ) -> None:
        self.db, self.bus, self.clock = db, bus, clock
        self.provider, self.connector, self.gate = provider, connector, gate
        self.batch, self.concurrency, self.ack_wait_s = batch, concurrency, ack_wait_s
        self.throttle_floor = throttle_floor
        # 0 when the connector has no batch import (Capability.BATCH_USER_IMPORT): every push goes one by one.
        self.sis_batch_min = sis_batch_min
        # Likewise for new enrollments (Capability.BATCH_ENROLLMENT_IMPORT).
        self.enrollment_batch_min = enrollment_batch_min
        self.label = str(provider.id)

    async def run(self) -> None:
        """Consume forever; pauses (without fetching) while the gate is closed."""
        durable = await ensure_consumer(
            self.bus.js, self.provider.id, ack_wait_s=self.ack_wait_s, max_ack_pending=self.batch * 4
        )
        sub = await self.bus.js.pull_subscribe_bind(durable=durable, stream=STREAM)
        try:
            while True:
                await self.gate.wait_open()
                try:
                    msgs = await sub.fetch(self.batch, timeout=1.0)
                except nats.errors.TimeoutError:
                    continue
                except (nats.errors.Error, OSError):
                    await asyncio.sleep(0.5)  # NATS restarting: the client reconnects by itself
                    continue
                await self.handle(msgs)
        finally:
            await sub.unsubscribe()

    async def handle(self, msgs: list[Msg]) -> None:
        """Settle one fetched batch."""
        records: list[tuple[Msg, Record]] = []
        for msg in msgs:
            try:
                records.append((msg, Record.from_bytes(msg.data)))
            except (ValueError, KeyError, TypeError):
                log.error("provider %s: dropping unreadable queue message", self.provider.id)
                await msg.ack()
        states = await ledger_states(self.db, self.provider.id, [r.outbox_id for _, r in records])
        todo: list[tuple[Msg, Record]] = []
        for msg, record in records:
            state = states.get(record.outbox_id)
            if (
                state is not None and state != DeliveryState.SENDING.value
            ) or record.outbox_id <= self.provider.outbox_floor:
                await msg.ack()  # a redelivery of something already settled, or older than the provider
            else:
                todo.append((msg, record))
        if not todo:
            return
        await self.mark_sending([r for _, r in todo])
        uuids = {str(r.payload.get("uuid") or r.payload.get("user_uuid") or "") for _, r in todo}
        users = await users_by_uuid(self.db, uuids - {""})
        outcomes: list[tuple[Msg, Settlement | None]] = []
        if self.sis_batch_min:
            todo = await self.import_batch(todo, states, users, outcomes)
        if self.enrollment_batch_min:
            todo = await self.import_enrollment_batch(todo, states, users, outcomes)
        groups: dict[str, list[tuple[Msg, Record]]] = {}
        for item in todo:
            groups.setdefault(item[1].aggregate_id, []).append(item)
        gate = asyncio.Semaphore(self.concurrency)

        async def run_group(items: list[tuple[Msg, Record]]) -> None:
            async with gate:
                blocked = False
                for msg, record in items:
                    fresh = record.outbox_id not in states
                    outcome = None if blocked else await self.settle(record, Context(users, fresh))
                    blocked = blocked or outcome is None  # keep a learner's later records behind it
                    outcomes.append((msg, outcome))

        async with asyncio.TaskGroup() as group:
            for items in groups.values():
                group.create_task(run_group(items))
        finals = [s for _, s in outcomes if s is not None]
        if finals:
            await self.write_ledger(finals)
        for msg, outcome in outcomes:
            if outcome is None:
                await msg.nak(delay=NAK_DELAY_S)
            else:
                await msg.ack()

    async def import_batch(
        self,
        todo: list[tuple[Msg, Record]],
        states: dict[int, str],
        users: dict[str, dict[str, Any]],
        outcomes: list[tuple[Msg, Settlement | None]],
    ) -> list[tuple[Msg, Record]]:
        """Large backlogs: new learners of this batch go upstream as one SIS import; returns what is left."""
        batch = [
            (msg, record, push)
            for msg, record in todo
            if record.outbox_id not in states and (push := batchable(self.provider, record, users))
        ]
        if len(batch) < self.sis_batch_min:
            return todo
        taken = {record.outbox_id for _, record, _ in batch}
        rest = [item for item in todo if item[1].outbox_id not in taken]
        try:
            async with self.gate.limit:
                clean = await cast(BatchUserImport, self.connector).import_users([push for _, _, push in batch])
        except Throttled as exc:
            self.gate.report_throttled(exc)
            outcomes.extend((msg, None) for msg, _, _ in batch)
            return rest
        except (Transient, AuthFailed) as exc:
            if isinstance(exc, AuthFailed):
                self.gate.report_auth_failed(exc)
            else:
                self.gate.report_transient(exc)
            outcomes.extend((msg, None) for msg, _, _ in batch)
            return rest
        except Rejected as exc:
            log.warning("provider %s: SIS import refused (%s); pushing one by one", self.provider.id, exc)
            clean = False
        if not clean:
            for outbox_id in taken:  # some rows may be upstream now: look before creating each
                states[outbox_id] = DeliveryState.SENDING.value
            return todo
        result = PushResult(PushOutcome.CREATED, None, "SIS import")
        outcomes.extend((msg, Settlement(record, DeliveryState.DONE, result=result)) for msg, record, _ in batch)
        return rest

    async def import_enrollment_batch(
        self,
        todo: list[tuple[Msg, Record]],
        states: dict[int, str],
        users: dict[str, dict[str, Any]],
        outcomes: list[tuple[Msg, Settlement | None]],
    ) -> list[tuple[Msg, Record]]:
        """Large backlogs: new enrollments of this batch go upstream as one import; returns what is left.

        Only first attempts of additions whose enrollment is still active locally, of learners with no user
        record left to push in this batch (the upstream account must exist before the import runs)."""
        # (With push_roster off, user records change nothing upstream and hold nothing back.)
        pending_users = {r.aggregate_id for _, r in todo if r.topic.startswith("roster.user.")
                         and self.provider.push_roster}
        candidates = [
            (msg, record)
            for msg, record in todo
            if record.outbox_id not in states
            and record.topic == OutboxTopic.ENROLLMENT_ADDED.value
            and str(record.payload.get("provider_id")) == str(self.provider.id)
            and str(record.payload.get("user_uuid")) in users
            and str(record.payload.get("user_uuid")) not in pending_users
        ]
        if len(candidates) < self.enrollment_batch_min:
            return todo
        ids = [r.payload.get("enrollment_id") for _, r in candidates]
        marks = ",".join("?" * len(ids))
        active = {
            row["id"]
            for row in await self.db.fetchall(f"SELECT id, state FROM enrollments WHERE id IN ({marks})", tuple(ids))
            if row["state"] == "active"
        }
        batch = [(msg, r) for msg, r in candidates if r.payload.get("enrollment_id") in active]
        if len(batch) < self.enrollment_batch_min:
            return todo
        pairs = [(str(r.payload["course_external_id"]), str(r.payload["user_uuid"])) for _, r in batch]
        try:
            async with self.gate.limit:
                handled = await cast(BatchEnrollmentImport, self.connector).import_enrollments(pairs)
        except Throttled as exc:
            self.gate.report_throttled(exc)
            handled = set()
        except (Transient, AuthFailed) as exc:
            if isinstance(exc, AuthFailed):
                self.gate.report_auth_failed(exc)
            else:
                self.gate.report_transient(exc)
            handled = set()
        except Rejected as exc:
            log.warning("provider %s: enrollment import refused (%s); pushing one by one", self.provider.id, exc)
            handled = set()
        # Whatever was not imported cleanly takes the per-record path, which looks before enrolling.
        done = {r.outbox_id for (_, r), pair in zip(batch, pairs, strict=True) if pair in handled}
        result = PushResult(PushOutcome.CREATED, None, "SIS import")
        outcomes.extend((msg, Settlement(r, DeliveryState.DONE, result=result)) for msg, r in batch
                        if r.outbox_id in done)
        return [item for item in todo if item[1].outbox_id not in done]

    async def mark_sending(self, records: list[Record]) -> None:
        """Before any upstream call: remember that one may happen, so a crash is followed by a look-up."""
        now = self.clock.iso_now()
        async with self.db.transaction() as tx:
            await tx.executemany(
                "INSERT INTO push_deliveries (outbox_id, provider_id, state, attempts, updated_at)"
                " VALUES (?, ?, 'sending', 0, ?) ON CONFLICT (outbox_id, provider_id) DO NOTHING",
                [(r.outbox_id, self.provider.id, now) for r in records],
            )

    async def settle(self, record: Record, context: Context | None = None) -> Settlement | None:
        """Push one record; None means "not now" (uplink down, throttled too long, credentials)."""
        for _ in range(MAX_THROTTLE_RETRIES):
            if not self.gate.is_open:
                return None
            await self.gate.wait_open()
            started = time.monotonic()
            try:
                async with self.gate.limit:  # adaptive: halves on throttling, grows back on success
                    result = await apply(self.db, self.provider, self.connector, record, context)
            except Throttled as exc:
                metrics.UPSTREAM_ERRORS.labels(self.label, "throttled").inc()
                self.gate.report_throttled(exc)
                continue
            except Transient as exc:
                metrics.UPSTREAM_ERRORS.labels(self.label, "transient").inc()
                self.gate.report_transient(exc)
                return None
            except AuthFailed as exc:
                metrics.UPSTREAM_ERRORS.labels(self.label, "auth").inc()
                self.gate.report_auth_failed(exc)
                return None
            except Rejected as exc:
                metrics.UPSTREAM_ERRORS.labels(self.label, "rejected").inc()
                return Settlement(record, DeliveryState.DEAD, error=exc)
            except (KeyError, ValueError, TypeError) as exc:  # a malformed record can never succeed
                log.exception("provider %s: record %s is malformed", self.provider.id, record.outbox_id)
                return Settlement(record, DeliveryState.DEAD, error=exc)
            metrics.PUSH_SECONDS.labels(self.label).observe(time.monotonic() - started)
            self.gate.report_success(self.connector.rate_remaining(), self.throttle_floor)
            state = DeliveryState.SKIPPED if result.outcome is PushOutcome.SKIPPED else DeliveryState.DONE
            return Settlement(record, state, result=result)
        return None

    async def write_ledger(self, finals: list[Settlement]) -> None:
        """One transaction: deliveries, dead letters, user mappings, enrollment ids, last push time."""
        now = self.clock.iso_now()
        pid = self.provider.id
        deliveries, resolved, users, enrollments = [], [], [], []
        for s in finals:
            external = s.result.external_id if s.result else None
            detail = s.result.detail if s.result else str(s.error)
            deliveries.append((s.record.outbox_id, pid, s.state.value, external, detail[:500], now))
            metrics.PUSHED.labels(self.label, s.result.outcome.value if s.result else "dead").inc()
            if s.state is DeliveryState.DEAD:
                continue
            resolved.append((now, pid, s.record.outbox_id))
            if external is None:
                continue
            if s.record.topic.startswith("roster.user."):
                users.append((str(s.record.payload.get("uuid")), external))
            elif s.record.topic == "roster.enrollment.added" and s.record.payload.get("enrollment_id"):
                enrollments.append((external, s.record.payload["enrollment_id"]))
        async with self.db.transaction() as tx:
            await tx.executemany(
                "INSERT INTO push_deliveries (outbox_id, provider_id, state, external_id, detail, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (outbox_id, provider_id) DO UPDATE SET"
                " state = excluded.state, external_id = excluded.external_id, detail = excluded.detail,"
                " attempts = attempts + 1, updated_at = excluded.updated_at",
                deliveries,
            )
            for s in finals:
                if s.state is DeliveryState.DEAD:
                    await self._dead_letter(tx, s, now)
            await tx.executemany(
                "UPDATE dead_letters SET state = 'resolved', updated_at = ? WHERE provider_id = ? AND outbox_id = ?"
                " AND state != 'resolved'",
                resolved,
            )
            # Which upstream object each pushed learner became (a re-pointed user drops its old mapping).
            await tx.executemany(
                "DELETE FROM provider_user_mappings WHERE provider_id = ? AND external_user_id != ? AND user_id ="
                " (SELECT id FROM users WHERE uuid = ?)",
                [(pid, ext, uuid) for uuid, ext in users],
            )
            await tx.executemany(
                "INSERT INTO provider_user_mappings (provider_id, user_id, external_user_id, external_sis_id,"
                " matched_by, updated_at) SELECT ?, id, ?, uuid, 'pushed', ? FROM users WHERE uuid = ?"
                " ON CONFLICT (provider_id, external_user_id) DO UPDATE SET user_id = excluded.user_id,"
                " updated_at = excluded.updated_at",
                [(pid, ext, now, uuid) for uuid, ext in users],
            )
            await tx.executemany("UPDATE enrollments SET external_id = ? WHERE id = ?", enrollments)
            await tx.execute("UPDATE providers SET last_push_at = ? WHERE id = ?", (now, pid))

    async def _dead_letter(self, tx: Any, s: Settlement, now: str) -> None:
        status = s.error.status if isinstance(s.error, Rejected) else None
        body = s.error.body if isinstance(s.error, Rejected) else None
        log.warning(
            "provider %s: record %s rejected upstream (%s); moved to dead letters",
            self.provider.id,
            s.record.outbox_id,
            s.error,
        )
        await tx.execute(
            "INSERT INTO dead_letters (provider_id, outbox_id, topic, status_code, error, error_body, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (provider_id, outbox_id) DO UPDATE SET state = 'open',"
            " status_code = excluded.status_code, error = excluded.error, error_body = excluded.error_body,"
            " updated_at = excluded.updated_at",
            (
                self.provider.id,
                s.record.outbox_id,
                s.record.topic,
                status,
                str(s.error)[:500],
                None if body is None else (body if isinstance(body, str) else dumps(body))[:4000],
                now,
            ),
        )
        await add_event(tx, EventType.DEAD_LETTER_CREATED, {
            "provider": {"id": self.provider.id, "name": self.provider.name}, "outbox_id": s.record.outbox_id,
            "topic": s.record.topic, "status_code": status, "error": str(s.error)[:500],
        })


def record_from_row(row: Any) -> Record:
    """An outbox row read from SQLite (dead-letter retries skip JetStream)."""
    return Record(int(row["id"]), str(row["topic"]), str(row["aggregate_id"]), json.loads(row["payload"]))
