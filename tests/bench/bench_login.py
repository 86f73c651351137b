"""Sign-in benchmark: a class of 50 learners signing in at once against the real daemon.

Prints the cost of one argon2id verification (the anchor), the wall time for all 50 sign-ins, p50/p99
per sign-in, and ratios against the ideal (50 verifications spread over the CPUs) and the 3 s target.
Run: .venv/bin/python tests/bench/bench_login.py [--short] [--workers N] [--learners N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from appliance.auth.passwords import hash_password, verify_password  # noqa: E402
from tests.bench.harness import daemon  # noqa: E402

TARGET_S = 3.0
PASSWORD = "class pass 2026"


def one_hash_cost(rounds: int) -> float:
    """Median seconds of one verification, measured in this process (the anchor)."""
    stored = hash_password(PASSWORD)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        verify_password(stored, PASSWORD)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _add_admin(config: Path) -> None:
    subprocess.run([sys.executable, "-m", "appliance", "user", "add", "--username", "benchadmin", "--role",
                    "system_admin", "--password-stdin", "--config", str(config)],
                   input="bench admin 2026\n", text=True, capture_output=True, check=True, timeout=120)


async def _prepare(base: str, learners: int) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(base + "/api/v1/auth/login",
                             json={"username": "benchadmin", "password": "bench admin 2026"}) as resp:
            resp.raise_for_status()
            csrf = (await resp.json())["data"]["csrf_token"]
        for i in range(learners):
            async with http.post(base + "/api/v1/users", headers={"X-CSRF-Token": csrf},
                                 json={"username": f"learner{i:03d}", "role": "learner", "password": PASSWORD}) as r:
                r.raise_for_status()


async def _sign_in(base: str, name: str) -> tuple[float, int]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        start = time.perf_counter()
        async with http.post(base + "/api/v1/auth/login", json={"username": name, "password": PASSWORD}) as resp:
            await resp.read()
            return time.perf_counter() - start, resp.status


async def _class_arrives(base: str, learners: int) -> tuple[float, list[float], int]:
    start = time.perf_counter()
    results = await asyncio.gather(*(_sign_in(base, f"learner{i:03d}") for i in range(learners)))
    wall = time.perf_counter() - start
    return wall, sorted(t for t, _ in results), sum(1 for _, s in results if s != 200)


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--short", action="store_true", help="one round instead of three")
    parser.add_argument("--workers", type=int, default=2, help="HTTP worker processes (default 2)")
    parser.add_argument("--learners", type=int, default=50)
    args = parser.parse_args()
    rounds = 1 if args.short else 3
    cost = one_hash_cost(5 if args.short else 15)
    cpus = os.cpu_count() or 1
    ideal = args.learners * cost / cpus
    print(f"one argon2id verification (anchor): {cost * 1000:.1f} ms   CPUs: {cpus}   "
          f"ideal for {args.learners}: {ideal:.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        # The whole class shares this one address: lift the per-address sign-in bucket for the run.
        extra = f"[auth]\nlogin_burst = {args.learners * 4}\nlogin_rate_per_minute = {args.learners * 60}\n"
        d = daemon(Path(tmp), extra, workers=args.workers)
        try:
            _add_admin(d.config)
            asyncio.run(_prepare(d.url, args.learners))
            for n in range(rounds):
                wall, times, failed = asyncio.run(_class_arrives(d.url, args.learners))
                print(f"round {n + 1}: {args.learners} sign-ins in {wall:.2f} s (target {TARGET_S:.1f} s, "
                      f"{wall / TARGET_S:.2f}x of target, {wall / ideal:.2f}x of ideal)  "
                      f"p50 {_pct(times, 0.5) * 1000:.0f} ms  p99 {_pct(times, 0.99) * 1000:.0f} ms  "
                      f"p50/one-hash {_pct(times, 0.5) / cost:.1f}x  failed {failed}")
        finally:
            d.stop()


if __name__ == "__main__":
    main()
