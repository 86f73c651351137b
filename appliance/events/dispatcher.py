"""Webhook deliveries: due rows → signed POSTs → results written in batches; retries with backoff and jitter.

SQLite holds every delivery until it succeeds or its retry window ends, so a restart (even after SIGKILL)
continues where it stopped; a delivery is marked only after its answer, so delivery is at-least-once.
A delivery stays "busy" in this process until its result is committed, so it is never sent twice at once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import aiohttp

from appliance.core.clock import Clock, iso
from appliance.core.tasks import TaskSupervisor
from appliance.core.vault import CredentialsError, Vault
from appliance.db.database import Database
from appliance.db.events import EventType, add_event
from appliance.events import metrics
from appliance.events.settings import WebhookSettings
from appliance.events.signing import signature_header
from appliance.events.store import Hook, open_keys

log = logging.getLogger(__name__)
FLUSH_BATCH = 500
FLUSH_INTERVAL_S = 0.02
HOOKS_TTL_S = 1.0
PREFETCH = 64
EXCERPT_CHARS = 1000


def user_agent() -> str:
    """`appliance-webhooks/<version>`, naming the appliance and its version."""
    try:
        return f"appliance-webhooks/{version('appliance')}"
    except PackageNotFoundError:
        return "appliance-webhooks/0"


def backoff_s(settings: WebhookSettings, attempt: int) -> float:
    """Wait after failed attempt n (1-based): exponential, capped, with "equal jitter" (half fixed, half random)."""
    base = min(settings.retry_max_interval_s, settings.retry_initial_s * 2 ** min(attempt - 1, 40))
    return base / 2 + random.uniform(0, base / 2)  # noqa: S311 - jitter, not a secret


def body_of(event_type: str, created_at: str, data: str) -> bytes:
    """The Standard Webhooks payload {"type", "timestamp", "data"}; identical on every retry."""
    return (f'{{"type":{json.dumps(event_type)},"timestamp":{json.dumps(created_at)},"data":{data}}}').encode()


@dataclass
class Result:
    """One attempt's outcome, waiting to be written."""

    delivery_id: int
    webhook_id: int
    attempt: int
    expires_at: str
    ok: bool
    status: int | None
    latency_ms: int
    error: str | None
    excerpt: str | None


class Dispatcher:
    """Runs in the primary: picks due deliveries fairly per webhook, sends them, records the results."""

    def __init__(self, db: Database, http: aiohttp.ClientSession, clock: Clock, settings: WebhookSettings,
                 vault: Vault, tasks: TaskSupervisor) -> None:
        self.db, self.http, self.clock, self.settings, self.vault = db, http, clock, settings, vault
        self.tasks = tasks
        self.wake = asyncio.Event()
        self.user_agent = user_agent()
        self._hooks: dict[int, Hook] = {}
        self._hooks_loaded = -1e9
        self._active: dict[int, int] = {}  # HTTP requests in progress per webhook
        self._busy: set[int] = set()  # deliveries sent or being sent whose result is not committed yet
        self._busy_by_hook: dict[int, int] = {}
        self._queued: dict[int, collections.deque[Any]] = {}  # prefetched due rows per webhook (already busy)
        self._sends: set[asyncio.Task[None]] = set()
        self._results: list[Result] = []
        self._results_ready = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._pick_lock = asyncio.Lock()
        self._unreadable: set[int] = set()
        self._timeout = aiohttp.ClientTimeout(total=settings.request_timeout_s, connect=settings.connect_timeout_s)

    def start(self) -> None:
        """Spawn the pick loop and the result writer."""
        self._loops = [self.tasks.spawn("webhooks-dispatch", self.run),
                       self.tasks.spawn("webhooks-results", self.write_results)]

    async def stop(self) -> None:
        """Cancel sends in flight (they stay pending and are sent again later) and write what finished."""
        for loop in self._loops:
            loop.cancel()
        if self._loops:
            await asyncio.wait(self._loops, timeout=5)
        for task in list(self._sends):
            task.cancel()
        if self._sends:
            await asyncio.wait(self._sends, timeout=5)
        with contextlib.suppress(Exception):
            await self.flush()

    # ---------------------------------------------------------------- picking

    def invalidate(self) -> None:
        """Webhooks changed (API, auto-disable): read them again at the next pick."""
        self._hooks_loaded = -1e9
        self.wake.set()

    async def load_hooks(self) -> list[Hook]:
        """Enabled webhooks, read again at most every second unless invalidated; secrets decrypted on change."""
        if time.monotonic() - self._hooks_loaded < HOOKS_TTL_S:
            return list(self._hooks.values())
        self._hooks_loaded = time.monotonic()
        rows = await self.db.fetchall(
            "SELECT id, url, headers, secret, previous_secret_until, failure_count, updated_at FROM webhooks"
            " WHERE enabled = 1 ORDER BY id"
        )
        now = self.clock.now()
        hooks: dict[int, Hook] = {}
        for row in rows:
            stamp = f"{row['updated_at']}|{row['failure_count'] > 0}|{row['previous_secret_until'] or ''}"
            cached = self._hooks.get(row["id"])
            until = row["previous_secret_until"]
            if cached is not None and cached.stamp == stamp and not (until and datetime.fromisoformat(until) <= now):
                hooks[row["id"]] = cached
                continue
            try:
                keys = open_keys(self.vault, row["secret"], until, now)
            except (CredentialsError, ValueError, KeyError):
                if row["id"] not in self._unreadable:  # say it once, not every second
                    log.error("webhook %d: its secret does not decrypt with this key; skipping it", row["id"])
                    self._unreadable.add(row["id"])
                continue
            self._unreadable.discard(row["id"])
            hooks[row["id"]] = Hook(row["id"], row["url"], json.loads(row["headers"]), keys,
                                    row["failure_count"] > 0, stamp)
        self._hooks = hooks
        return list(hooks.values())

    async def run(self) -> None:
        """Pick and start due deliveries forever; sleep until the next one is due or something changes."""
        while True:
            self.wake.clear()
            started = await self.pick_once()
            if started:
                continue
            delay = await self.next_due_in()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), delay)

    async def pick_once(self) -> int:
        """Start sends for due deliveries within the global and per-webhook limits; returns how many."""
        # A result committed while our query ran must not look pending-and-free: flush releases under this lock.
        async with self._pick_lock:
            return await self._pick()

    async def _pick(self) -> int:
        hooks = await self.load_hooks()
        live = {hook.id for hook in hooks}
        for hook_id in [h for h in self._queued if h not in live]:
            # disabled or deleted: its prefetched rows go back (they stay pending in the database)
            for row in self._queued.pop(hook_id):
                self._busy.discard(row["id"])
                self._busy_by_hook[hook_id] -= 1
        now = self.clock.iso_now()
        started = 0
        for hook in hooks:
            # A failing receiver gets one request at a time until it answers again: no retry storm.
            cap = 1 if hook.failing else self.settings.per_webhook_concurrency
            free = min(cap - self._active.get(hook.id, 0), self.settings.concurrency - sum(self._active.values()))
            if free <= 0:
                continue
            queue = self._queued.setdefault(hook.id, collections.deque())
            if len(queue) < free:
                # Prefetch a few rounds' worth: one query feeds many sends instead of one query per send.
                rows = await self.db.fetchall(
                    "SELECT d.id, d.attempts, d.expires_at, e.id AS event_id, e.type, e.data, e.created_at"
                    " FROM webhook_deliveries d JOIN events e ON e.seq = d.event_seq"
                    " WHERE d.webhook_id = ? AND d.state = 'pending' AND d.next_attempt_at <= ?"
                    " ORDER BY d.next_attempt_at LIMIT ?",
                    (hook.id, now, max(free, PREFETCH) + self._busy_by_hook.get(hook.id, 0)),
                )
                for row in rows:
                    if row["id"] not in self._busy:
                        self._busy.add(row["id"])
                        self._busy_by_hook[hook.id] = self._busy_by_hook.get(hook.id, 0) + 1
                        queue.append(row)
            while free > 0 and queue:
                row = queue.popleft()
                self._active[hook.id] = self._active.get(hook.id, 0) + 1
                task = asyncio.get_running_loop().create_task(self.send(hook, row), name=f"webhook-send-{row['id']}")
                self._sends.add(task)
                task.add_done_callback(self._sends.discard)
                free -= 1
                started += 1
        return started

    async def next_due_in(self) -> float:
        """Seconds until the earliest pending delivery of an enabled webhook is due (at most 1 s)."""
        if sum(self._active.values()) >= self.settings.concurrency:
            return 1.0
        due = await self.db.fetchval(
            "SELECT MIN(d.next_attempt_at) FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id"
            " WHERE d.state = 'pending' AND w.enabled = 1"
        )
        if due is None:
            return 1.0
        wait = (datetime.fromisoformat(due) - self.clock.now()).total_seconds()
        return min(1.0, max(0.01, wait))

    # ---------------------------------------------------------------- sending

    async def send(self, hook: Hook, row: Any) -> None:
        """One signed POST; the outcome goes to the result writer."""
        body = body_of(row["type"], row["created_at"], row["data"])
        timestamp = int(self.clock.now().timestamp())
        headers = {
            **hook.headers,
            "Content-Type": "application/json",
            "User-Agent": self.user_agent,
            "webhook-id": row["event_id"],
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(hook.keys, row["event_id"], timestamp, body),
        }
        started = time.monotonic()
        status: int | None = None
        excerpt: str | None = None
        error: str | None = None
        try:
            async with self.http.post(hook.url, data=body, headers=headers, allow_redirects=False,
                                      timeout=self._timeout) as resp:
                status = resp.status
                raw = await read_capped(resp, self.settings.max_response_bytes)
                excerpt = raw.decode("utf-8", "replace")[:EXCERPT_CHARS] or None
        except TimeoutError:
            error = f"timed out after {self.settings.request_timeout_s:g}s"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            error = (str(exc) or type(exc).__name__)[:500]
        latency = int((time.monotonic() - started) * 1000)
        ok = status is not None and 200 <= status < 300
        if status is not None and not ok:
            error = f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
        metrics.ATTEMPTS.labels("ok" if ok else "failed").inc()
        metrics.LATENCY.observe(latency / 1000)
        self._results.append(Result(row["id"], hook.id, row["attempts"] + 1, row["expires_at"], ok, status, latency,
                                    error, excerpt))
        self._results_ready.set()
        # The request slot is free now; the delivery itself stays busy until its result is committed.
        self._active[hook.id] -= 1
        self.wake.set()

    # ---------------------------------------------------------------- recording

    async def write_results(self) -> None:
        """Write finished attempts in batches (one transaction per batch keeps up with hundreds per second)."""
        while True:
            await self._results_ready.wait()
            await asyncio.sleep(FLUSH_INTERVAL_S)
            await self.flush()

    async def flush(self) -> None:
        """Commit every finished attempt, then release those deliveries for picking again."""
        while self._results:
            batch, self._results = self._results[:FLUSH_BATCH], self._results[FLUSH_BATCH:]
            if not self._results:
                self._results_ready.clear()
            try:
                await self._commit(batch)
            except BaseException:
                self._results = batch + self._results  # keep them busy and try again
                self._results_ready.set()
                raise
            async with self._pick_lock:
                for result in batch:
                    self._busy.discard(result.delivery_id)
                    self._busy_by_hook[result.webhook_id] -= 1
            self.wake.set()

    async def _commit(self, batch: list[Result]) -> None:
        now_dt = self.clock.now()
        now = iso(now_dt)
        settings = self.settings
        async with self.db.transaction() as tx:
            attempt_rows = []
            await tx.executemany(
                "UPDATE webhook_deliveries SET state = 'succeeded', attempts = ?, last_status = ?,"
                " last_error = NULL, finished_at = ? WHERE id = ?",
                [(r.attempt, r.status, now, r.delivery_id) for r in batch if r.ok],
            )
            for r in batch:
                attempt_rows.append((r.delivery_id, r.attempt, r.status, int(r.ok), r.latency_ms, r.error, r.excerpt,
                                     now))
                if r.ok:
                    continue
                if now_dt >= datetime.fromisoformat(r.expires_at):
                    await tx.execute(
                        "UPDATE webhook_deliveries SET state = 'failed', attempts = ?, last_status = ?, last_error = ?,"
                        " finished_at = ? WHERE id = ?",
                        (r.attempt, r.status, r.error, now, r.delivery_id),
                    )
                    metrics.GIVEN_UP.inc()
                else:
                    retry_at = iso(now_dt + timedelta(seconds=backoff_s(settings, r.attempt)))
                    await tx.execute(
                        "UPDATE webhook_deliveries SET attempts = ?, last_status = ?, last_error = ?,"
                        " next_attempt_at = ? WHERE id = ?",
                        (r.attempt, r.status, r.error, retry_at, r.delivery_id),
                    )
            # A webhook deleted while its request was in flight took its deliveries along: log nothing for them.
            await tx.executemany(
                "INSERT INTO webhook_attempts (delivery_id, attempt, status_code, ok, latency_ms, error,"
                " response_excerpt, at) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8"
                " WHERE EXISTS (SELECT 1 FROM webhook_deliveries WHERE id = ?1)",
                attempt_rows,
            )
            for webhook_id in dict.fromkeys(r.webhook_id for r in batch):
                await self._update_streak(tx, webhook_id, [r for r in batch if r.webhook_id == webhook_id], now_dt)

    async def _update_streak(self, tx: Any, webhook_id: int, results: list[Result], now_dt: datetime) -> None:
        """Consecutive failures per webhook; a success resets them and pulls the waiting retries forward."""
        cur = await tx.execute("SELECT url, enabled, failure_count, failing_since FROM webhooks WHERE id = ?",
                               (webhook_id,))
        row = await cur.fetchone()
        if row is None:
            return
        now = iso(now_dt)
        count, since = row["failure_count"], row["failing_since"]
        was_failing = count > 0
        recovered = False
        for r in results:
            if r.ok:
                count, since, recovered = 0, None, True
            else:
                count += 1
                since = since or now
        last_ok = any(r.ok for r in results)
        last_failed = any(not r.ok for r in results)
        await tx.execute(
            "UPDATE webhooks SET failure_count = ?, failing_since = ?,"
            " last_success_at = CASE WHEN ? THEN ? ELSE last_success_at END,"
            " last_failure_at = CASE WHEN ? THEN ? ELSE last_failure_at END WHERE id = ?",
            (count, since, last_ok, now, last_failed, now, webhook_id),
        )
        if (count > 0) != was_failing:
            self._hooks_loaded = -1e9  # the failing flag changed: read the webhook again at the next pick
        if recovered and was_failing:
            # The receiver is back: everything that was waiting for it is due now, not at its backoff time.
            await tx.execute(
                "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE webhook_id = ? AND state = 'pending'"
                " AND next_attempt_at > ?",
                (now, webhook_id, now),
            )
            log.info("webhook %d: receiver answers again", webhook_id)
        elif count and not was_failing:
            log.warning("webhook %d: delivery failed (%s); retrying with backoff", webhook_id, results[-1].error)
        limit, span = self.settings.disable_after_failures, self.settings.disable_after_s
        if (row["enabled"] and limit and count >= limit and since is not None
                and (now_dt - datetime.fromisoformat(since)).total_seconds() >= span):
            reason = f"{count} consecutive failed deliveries since {since}"
            await tx.execute(
                "UPDATE webhooks SET enabled = 0, disabled_reason = ?, updated_at = ? WHERE id = ?",
                (reason, now, webhook_id),
            )
            await add_event(tx, EventType.WEBHOOK_DISABLED, {
                "webhook": {"id": webhook_id, "url": row["url"]}, "reason": reason, "failure_count": count,
                "failing_since": since,
            })
            metrics.DISABLED.inc()
            log.warning("webhook %d disabled: %s", webhook_id, reason)


async def read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """At most `limit` bytes of the answer; the rest is never read (the connection is then closed)."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await resp.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size >= limit and not resp.content.at_eof():
        resp.close()
    return b"".join(chunks)
