"""Benchmark: deliver 10,000 domain events to a local webhook receiver through the real daemon.

Run by hand:  .venv/bin/python -m tests.bench.webhooks [--short]

The daemon runs as a subprocess (`appliance serve`, one process) with one webhook subscribed to every
event; the receiver is a real aiohttp server in its own process (tests/events/receiver.py) that verifies
every delivery with the `standardwebhooks` library. Events are written into the events table as
features write them. Arrival times use the system-wide monotonic clock, comparable across processes.

1. Anchor: bare signed POSTs/s from one aiohttp client to the same receiver at the daemon's concurrency.
2. Burst: 10,000 events (short: 2,000) committed at once; prints events/s until the last one is delivered,
   the p50/p95 delivery delay (receiver arrival minus the event's time) and the primary's peak RSS.
3. Paced: events at a steady 200/s for 10 s (short: 3 s); prints the p95 delivery delay at that rate.
Targets: >= 500 events/s, primary RSS < 200 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil

from appliance.events.signing import secret_key, signature_header
from tests.daemon import start_daemon
from tests.events.receiver import free_port
from tests.events.seed import insert_events, seed_webhook
from tests.events.test_daemon import migrated

TARGET_RATE = 500
TARGET_RSS = 200 * 1024 * 1024


def percentile(values: list[float], pct: float) -> float:
    """The pct-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


class RemoteReceiver:
    """The receiver in its own process, asked over HTTP what has arrived."""

    def __init__(self, secrets: list[str]) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.events.receiver", str(self.port), *secrets],
                                     stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        self.proc.stdout.readline()  # "ready"
        self.http = aiohttp.ClientSession()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def stats(self, arrivals: bool = False) -> dict:
        async with self.http.get(f"http://127.0.0.1:{self.port}/stats",
                                 params={"arrivals": "1"} if arrivals else {}) as resp:
            return await resp.json()

    async def wait_distinct(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (await self.stats())["distinct"] < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {(await self.stats())['distinct']} of {count} arrived")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        await self.http.close()
        self.proc.terminate()
        self.proc.wait(10)


async def anchor(rx: RemoteReceiver, secret: str, count: int, concurrency: int) -> float:
    """Signed POSTs per second straight from one client (what the receiver and this machine allow)."""
    key = secret_key(secret)
    gate = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as http:
        async def one(i: int) -> None:
            body = b'{"type":"library.added","timestamp":"2026-01-01T00:00:00.000Z","data":{"n":%d}}' % i
            ts = int(time.time())
            headers = {"content-type": "application/json", "webhook-id": f"msg_anchor{i}",
                       "webhook-timestamp": str(ts), "webhook-signature": signature_header([key], f"msg_anchor{i}",
                                                                                          ts, body)}
            async with gate, http.post(rx.url, data=body, headers=headers) as resp:
                await resp.read()

        started = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(count)))
        return count / (time.monotonic() - started)


class Sampler:
    """Peak RSS of the daemon's primary and of its nats-server child, sampled every 100 ms."""

    def __init__(self, pid: int) -> None:
        self.primary = psutil.Process(pid)
        self.peak_primary = 0
        self.peak_nats = 0
        self._task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        while True:
            self.peak_primary = max(self.peak_primary, self.primary.memory_info().rss)
            for child in self.primary.children(recursive=True):
                try:
                    if "nats" in child.name():
                        self.peak_nats = max(self.peak_nats, child.memory_info().rss)
                except psutil.NoSuchProcess:
                    pass
            await asyncio.sleep(0.1)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run())

    def stop(self) -> None:
        if self._task:
            self._task.cancel()


def arrival_delays(arrivals: dict[str, float], ids: list[str], created: dict[str, float]) -> list[float]:
    """Seconds from each event's commit to its first verified arrival at the receiver."""
    return [arrivals[i] - created[i] for i in ids if i in arrivals]


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="2,000 events and a 3 s paced run")
    args = parser.parse_args()
    burst = 2_000 if args.short else 10_000
    paced_s = 3 if args.short else 10
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp:
        root = Path(tmp)
        config, db_path = await migrated(root)
        secret = seed_webhook(db_path, root / "var" / "secrets" / "sync.key", "http://127.0.0.1:1/")
        rx = RemoteReceiver([secret])
        conn = sqlite3.connect(db_path)
        with conn:
            conn.execute("UPDATE webhooks SET url = ?", (rx.url,))
        conn.close()
        daemon = None
        try:
            rate = await anchor(rx, secret, 2000, 16)
            print(f"anchor: {rate:,.0f} signed POSTs/s from one client at concurrency 16 to the same receiver")
            daemon = await asyncio.to_thread(start_daemon, root, config=config)
            sampler = Sampler(daemon.pid)
            sampler.start()
            await asyncio.sleep(1.5)  # the daemon reads webhooks at most once a second
            idle = psutil.Process(daemon.pid).memory_info().rss
            base = (await rx.stats())["distinct"]
            primary = psutil.Process(daemon.pid)
            cpu_before = sum(primary.cpu_times()[:2])
            committed = time.monotonic()
            ids = await asyncio.to_thread(insert_events, db_path, burst)
            created = dict.fromkeys(ids, committed)
            await rx.wait_distinct(base + burst, timeout=600)
            cpu = sum(primary.cpu_times()[:2]) - cpu_before
            stats = await rx.stats(arrivals=True)
            arrivals = stats["arrivals"]
            elapsed = max(arrivals[i] for i in ids) - committed
            burst_delays = arrival_delays(arrivals, ids, created)
            print(f"burst: {burst:,} events delivered in {elapsed:.2f}s = {burst / elapsed:,.0f} events/s"
                  f" ({burst / elapsed / rate:.2f} x anchor); target >= {TARGET_RATE}")
            print(f"burst CPU of the daemon's primary: {cpu:.2f}s = {cpu / burst * 1000:.2f} ms per event"
                  f" (one free core would carry {burst / cpu:,.0f} events/s); load average"
                  f" {psutil.getloadavg()[0]:.1f} on {psutil.cpu_count()} CPUs")
            print(f"burst delay (commit to arrival): p50 {statistics.median(burst_delays):.2f}s,"
                  f" p95 {percentile(burst_delays, 95):.2f}s; duplicates {stats['total'] - stats['distinct']}")
            # paced: a steady 200 events/s in small transactions
            paced_ids: list[str] = []
            paced_created: dict[str, float] = {}
            per_tick, tick = 4, 0.02
            start = time.monotonic()
            n = 0
            while time.monotonic() - start < paced_s:
                at = time.monotonic()
                batch = await asyncio.to_thread(insert_events, db_path, per_tick, start=n)
                n += per_tick
                for i in batch:
                    paced_created[i] = at
                paced_ids += batch
                await asyncio.sleep(max(0.0, start + n / per_tick * tick - time.monotonic()))
            await rx.wait_distinct(base + burst + len(paced_ids), timeout=120)
            stats = await rx.stats(arrivals=True)
            paced = arrival_delays(stats["arrivals"], paced_ids, paced_created)
            print(f"paced: {len(paced_ids):,} events at {len(paced_ids) / paced_s:,.0f}/s: delay p50"
                  f" {statistics.median(paced):.3f}s, p95 {percentile(paced, 95):.3f}s")
            print(f"peak RSS: primary {sampler.peak_primary / 2**20:.0f} MiB (idle {idle / 2**20:.0f} MiB),"
                  f" nats-server {sampler.peak_nats / 2**20:.0f} MiB; target primary < {TARGET_RSS >> 20} MB")
            print(f"verification failures at the receiver: {stats['bad']}")
            sampler.stop()
        finally:
            if daemon is not None:
                await asyncio.to_thread(daemon.stop)
            await rx.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
