"""The sync engine of the primary process: relay, scheduler, and per provider an uplink gate, pusher and runner."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

import aiohttp

from appliance.bus.client import Bus
from appliance.connectors.contract import Capability
from appliance.connectors.errors import AuthFailed
from appliance.core.clock import Clock
from appliance.core.tasks import TaskSupervisor
from appliance.db.database import Database
from appliance.db.events import EventType, add_event
from appliance.sync import metrics, scheduler, store
from appliance.sync.connect import Opened, open_connector
from appliance.sync.cron import Cron
from appliance.sync.model import Job, Provider, ProviderState, RunState, RuntimeState, Uplink
from appliance.sync.pull import ACTIVITY_CURSOR, MILESTONE_CURSOR, Puller
from appliance.sync.push import Pusher, record_from_row
from appliance.sync.relay import OutboxRelay
from appliance.sync.secrets import CredentialsError, Vault
from appliance.sync.settings import SyncSettings
from appliance.sync.streams import delete_consumer
from appliance.sync.uplink import UplinkGate

log = logging.getLogger(__name__)
RECONCILE_INTERVAL_S = 2.0
# What restarts a provider's worker when it changes (its credentials are compared apart, see _changed).
WORKER_SETTINGS = ("id", "type", "base_url", "account_id", "facility_id", "state", "push_roster")


@dataclass
class Worker:
    """The running parts of one provider."""

    provider: Provider | None
    fingerprint: str
    gate: UplinkGate | None = None
    pusher: Pusher | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    wake_runs: asyncio.Event = field(default_factory=asyncio.Event)
    credentials: str = ""  # the sealed credentials the worker started with
    stored: str = ""  # what the worker last knew to be in the row (it started with, or its own last write)
    # Sealed credentials the worker's own connector stored (a rotated refresh token): no restart for those.
    own_writes: set[str] = field(default_factory=set)


class SyncEngine:
    """Starts and stops provider workers as providers change (in any process: changes are read from SQLite)."""

    def __init__(
        self,
        db: Database,
        bus: Bus,
        http: aiohttp.ClientSession,
        clock: Clock,
        tasks: TaskSupervisor,
        settings: SyncSettings,
        vault: Vault,
    ) -> None:
        self.db, self.bus, self.http, self.clock, self.tasks = db, bus, http, clock, tasks
        self.settings, self.vault = settings, vault
        self.relay = OutboxRelay(db, bus, clock, batch=settings.relay_batch, interval_s=settings.relay_interval_s)
        self.schedule = scheduler.Schedule(Cron.parse(settings.pull_schedule), Cron.parse(settings.report_schedule))
        self.workers: dict[int, Worker] = {}
        self.poke = asyncio.Event()

    async def start(self) -> None:
        """Spawn the engine's supervised loops."""
        await scheduler.recover_interrupted(self.db)
        self.tasks.spawn("sync-relay", self.relay.run)
        self.tasks.spawn("sync-providers", self.reconcile_loop)
        self.tasks.spawn("sync-scheduler", self.scheduler_loop)
        self.tasks.spawn("sync-status", self.status_loop)

    async def stop(self) -> None:
        """Stop every provider worker."""
        for pid in list(self.workers):
            await self.stop_worker(pid)

    # ---- providers -------------------------------------------------------------------------------
    async def reconcile_loop(self) -> None:
        """Keep workers in line with the providers table."""
        while True:
            await self.reconcile()
            self.poke.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.poke.wait(), RECONCILE_INTERVAL_S)

    async def reconcile(self) -> None:
        """Start, restart (config or credentials changed) or stop workers."""
        rows = await self.db.fetchall(
            "SELECT id, type, base_url, account_id, credentials, facility_id, state, push_roster FROM providers"
        )
        wanted: dict[int, tuple[str, str]] = {}
        for row in rows:
            if row["state"] == ProviderState.ENABLED.value:
                settings = [row[k] for k in WORKER_SETTINGS]
                wanted[row["id"]] = (hashlib.sha256(json.dumps(settings).encode()).hexdigest(), row["credentials"])
            elif row["state"] == ProviderState.ARCHIVED.value and row["id"] in self.workers:
                await delete_consumer(self.bus.js, row["id"])
        for pid in [p for p in self.workers if self._changed(self.workers[p], wanted.get(p))]:
            await self.stop_worker(pid)
            if pid not in wanted:
                await store.set_runtime(self.db, pid, runtime=RuntimeState.DISABLED, uplink=Uplink.UNKNOWN)
        for pid, (fingerprint, credentials) in wanted.items():
            if pid not in self.workers:
                await self.start_worker(pid, fingerprint, credentials)

    @staticmethod
    def _changed(worker: Worker, wanted: tuple[str, str] | None) -> bool:
        """Settings or credentials changed by someone else than the worker's own token rotation."""
        if wanted is None or wanted[0] != worker.fingerprint:
            return True
        if wanted[1] != worker.credentials:
            if wanted[1] not in worker.own_writes:
                return True
            worker.credentials = wanted[1]
            worker.own_writes.discard(wanted[1])
        return False

    def _saver(self, worker: Worker, pid: int) -> Callable[[dict[str, str]], Awaitable[None]]:
        """Stores rotated credentials, marking them the worker's own before they land (no restart)."""

        async def save(credentials: dict[str, str]) -> None:
            sealed = self.vault.seal(credentials)
            worker.own_writes.add(sealed)
            # Only over what this worker last knew to be stored: an admin's new credentials win.
            await store.save_sealed_credentials(self.db, pid, sealed, expected=worker.stored)
            worker.stored = sealed

        return save

    def connector_for(
        self, provider: Provider, save: Callable[[dict[str, str]], Awaitable[None]] | None = None
    ) -> Opened | None:
        """The connector of a provider, from the connector registry (None when no connector is installed)."""
        return open_connector(provider, self.http, self.settings, save)

    async def start_worker(self, pid: int, fingerprint: str, credentials: str = "") -> None:
        """Gate + monitor, pusher, run queue and dead-letter retries of one provider."""
        try:
            provider = await store.load_provider(self.db, self.vault, pid)
        except CredentialsError as exc:
            await store.set_runtime(self.db, pid, runtime=RuntimeState.AUTH_FAILED, error=str(exc))
            self.workers[pid] = Worker(provider=None, fingerprint=fingerprint, credentials=credentials)
            return
        assert provider is not None
        worker = Worker(provider, fingerprint, credentials=credentials, stored=credentials)
        opened = self.connector_for(provider, self._saver(worker, pid))
        self.workers[pid] = worker
        if opened is None:
            await store.set_runtime(
                self.db,
                pid,
                runtime=RuntimeState.DISABLED,
                error=f"no connector for {provider.type} in this version",
            )
            return

        async def sink(runtime: RuntimeState, uplink: Uplink, error: str | None) -> None:
            metrics.UPLINK_UP.labels(str(pid)).set(1 if uplink is Uplink.UP else 0)
            await store.set_runtime(
                self.db, pid, runtime=runtime, uplink=uplink, error=error, clear_error=error is None
            )

        connector = opened.connector
        s = self.settings
        worker.gate = UplinkGate(
            pid,
            connector.probe,
            sink,
            probe_timeout=s.probe_timeout_s,
            probe_interval=s.probe_interval_s,
            backoff_initial=s.backoff_initial_s,
            backoff_max=s.backoff_max_s,
            concurrency=s.push_concurrency,
        )
        worker.pusher = Pusher(
            self.db,
            self.bus,
            self.clock,
            provider,
            connector,
            worker.gate,
            batch=s.push_batch,
            concurrency=s.push_concurrency,
            ack_wait_s=s.ack_wait_s,
            throttle_floor=s.throttle_floor,
            sis_batch_min=s.sis_batch_min if opened.kind.has(Capability.BATCH_USER_IMPORT) else 0,
            enrollment_batch_min=s.sis_batch_min if opened.kind.has(Capability.BATCH_ENROLLMENT_IMPORT) else 0,
        )
        worker.tasks = [
            self.tasks.spawn(f"sync-uplink-{pid}", worker.gate.run),
            self.tasks.spawn(f"sync-push-{pid}", worker.pusher.run),
            self.tasks.spawn(f"sync-runs-{pid}", lambda: self.run_queue(worker, opened)),
            self.tasks.spawn(f"sync-retries-{pid}", lambda: self.retry_loop(worker)),
        ]
        log.info("provider %d (%s) started", pid, provider.name)

    async def stop_worker(self, pid: int) -> None:
        """Cancel a provider's tasks and wait for them."""
        worker = self.workers.pop(pid, None)
        if worker is None:
            return
        for task in worker.tasks:
            task.cancel()
        if worker.tasks:
            await asyncio.wait(worker.tasks, timeout=5)

    # ---- runs ------------------------------------------------------------------------------------
    async def scheduler_loop(self) -> None:
        """Queue due windows: once at start-up (catch-up), then every tick."""
        await scheduler.tick(self.db, self.clock, self.schedule, startup=True)
        while True:
            self._wake_runs()
            await asyncio.sleep(self.settings.scheduler_tick_s)
            await scheduler.tick(self.db, self.clock, self.schedule)

    def _wake_runs(self) -> None:
        for worker in self.workers.values():
            worker.wake_runs.set()

    async def run_queue(self, worker: Worker, opened: Opened) -> None:
        """Execute this provider's queued runs one at a time, oldest first."""
        assert worker.provider is not None
        pid = worker.provider.id
        while True:
            row = await self.db.fetchone(
                "SELECT id, job FROM sync_runs WHERE provider_id = ? AND state = 'queued' ORDER BY id LIMIT 1", (pid,)
            )
            if row is None:
                worker.wake_runs.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(worker.wake_runs.wait(), 1.0)
                continue
            await self.execute(worker, opened, row["id"], Job(row["job"]))

    async def execute(self, worker: Worker, opened: Opened, run_id: int, job: Job) -> None:
        """One run; its cursor (milestones or activity) advances only when the whole run succeeded."""
        assert worker.gate is not None
        assert worker.provider is not None
        pid = worker.provider.id
        started = self.clock.iso_now()
        await self.db.execute("UPDATE sync_runs SET state = 'running', started_at = ? WHERE id = ?", (started, run_id))
        # Pulls follow the milestone cursor; reports of connectors with Capability.ACTIVITY their own.
        cursor = MILESTONE_CURSOR if job is Job.PULL else ACTIVITY_CURSOR
        advance = job is Job.PULL or opened.kind.has(Capability.ACTIVITY)
        since = await self.db.fetchval(
            "SELECT value FROM sync_cursors WHERE provider_id = ? AND kind = ?", (pid, cursor)
        )
        puller = Puller(
            self.db,
            self.clock,
            worker.provider,
            opened.connector,
            worker.gate,
            capabilities=opened.capabilities,
            analytics=self.settings.pull_analytics,
        )
        try:
            await puller.run(job, since)
        except asyncio.CancelledError:
            # The worker is restarting (credentials or settings changed): run it again later.
            await self.db.execute("UPDATE sync_runs SET state = 'queued', stage = '' WHERE id = ?", (run_id,))
            raise
        except Exception as exc:
            if isinstance(exc, AuthFailed):
                worker.gate.report_auth_failed(exc)
            log.warning("provider %d: %s run %d failed at %s: %s", pid, job.value, run_id, puller.stage, exc)
            error = f"{type(exc).__name__}: {exc}"
            async with self.db.transaction() as tx:
                await tx.execute(
                    "UPDATE sync_runs SET state = ?, stage = ?, counts = ?, errors = ?, finished_at = ? WHERE id = ?",
                    (
                        RunState.FAILED.value,
                        puller.stage,
                        store.dumps(puller.counts),
                        store.dumps([error]),
                        self.clock.iso_now(),
                        run_id,
                    ),
                )
                await add_event(tx, EventType.SYNC_FAILED, {
                    "provider": {"id": pid, "name": worker.provider.name}, "run_id": run_id, "job": job.value,
                    "stage": puller.stage, "counts": puller.counts, "error": error[:500],
                })
            # Shown on the provider too (the status API and console read last_error), so that a bad answer
            # from upstream (an HTML page, a paging loop, a 10 MB body) is visible where admins look.
            await store.set_runtime(self.db, pid, error=f"{job.value} run failed at {puller.stage}: {error}"[:500])
            metrics.RUNS.labels(str(pid), job.value, "failed").inc()
            return
        finished = self.clock.iso_now()
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE sync_runs SET state = ?, stage = 'done', counts = ?, finished_at = ? WHERE id = ?",
                (RunState.SUCCEEDED.value, store.dumps(puller.counts), finished, run_id),
            )
            await tx.execute("UPDATE providers SET last_pull_at = ? WHERE id = ?", (finished, pid))
            # A run that works again clears the failure an earlier run left on the provider (not the gate's).
            await tx.execute(
                "UPDATE providers SET last_error = NULL WHERE id = ? AND last_error LIKE '% run failed at %'", (pid,)
            )
            if advance:
                await tx.execute(
                    "INSERT INTO sync_cursors (provider_id, kind, value, updated_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (provider_id, kind) DO UPDATE SET value = excluded.value,"
                    " updated_at = excluded.updated_at",
                    (pid, cursor, started, finished),
                )
            await add_event(tx, EventType.SYNC_COMPLETED, {
                "provider": {"id": pid, "name": worker.provider.name}, "run_id": run_id, "job": job.value,
                "counts": puller.counts, "started_at": started, "finished_at": finished,
            })
        metrics.RUNS.labels(str(pid), job.value, "succeeded").inc()

    # ---- dead-letter retries and status ----------------------------------------------------------
    async def retry_loop(self, worker: Worker) -> None:
        """Re-push dead letters an admin asked to retry (kept in SQLite, so they survive restarts)."""
        assert worker.pusher is not None
        assert worker.gate is not None
        assert worker.provider is not None
        while True:
            await worker.gate.wait_open()
            rows = await self.db.fetchall(
                "SELECT o.id, o.topic, o.aggregate_id, o.payload FROM dead_letters d JOIN outbox o"
                " ON o.id = d.outbox_id WHERE d.provider_id = ? AND d.state = 'retrying' ORDER BY d.id LIMIT 50",
                (worker.provider.id,),
            )
            finals = []
            for row in rows:
                outcome = await worker.pusher.settle(record_from_row(row))
                if outcome is None:
                    break
                finals.append(outcome)
            if finals:
                await worker.pusher.write_ledger(finals)
            await asyncio.sleep(1.0)

    async def status_loop(self) -> None:
        """Refresh queue-depth gauges."""
        while True:
            for pid, worker in list(self.workers.items()):
                if worker.provider is None:
                    continue
                depth, oldest = await store.queue_depth(self.db, pid, worker.provider.outbox_floor)
                metrics.QUEUE_DEPTH.labels(str(pid)).set(depth)
                age = (
                    (self.clock.now() - datetime.fromisoformat(oldest.replace("Z", "+00:00"))).total_seconds()
                    if oldest
                    else 0.0
                )
                metrics.OLDEST_PENDING.labels(str(pid)).set(max(0.0, age))
                open_dead = await self.db.fetchval(
                    "SELECT COUNT(*) FROM dead_letters WHERE provider_id = ? AND state != 'resolved'", (pid,)
                )
                metrics.DEAD_LETTERS.labels(str(pid)).set(open_dead or 0)
            await asyncio.sleep(self.settings.status_interval_s)
