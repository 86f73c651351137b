"""Core benchmark: /healthz through the full middleware stack vs a bare aiohttp hello-world, plus idle
memory and time to ready. Run: .venv/bin/python tests/bench/bench_core.py [--short]"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.harness import daemon, start_hello, tree_rss, wrk  # noqa: E402


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--short", action="store_true", help="3 s runs instead of 10 s")
    args = parser.parse_args()
    duration = 3 if args.short else 10
    connections = 50

    port = _port()
    hello = start_hello(port)
    try:
        wrk(f"http://127.0.0.1:{port}/healthz", duration=1, connections=connections)  # warm-up
        anchor = wrk(f"http://127.0.0.1:{port}/healthz", duration=duration, connections=connections)
    finally:
        hello.terminate()
        hello.wait()

    results = {}
    ready_times = []
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            d = daemon(Path(tmp), workers=workers)
            try:
                ready_times.append((workers, d.ready_after_s))
                time.sleep(2)  # let workers settle before measuring idle memory
                rss = tree_rss(d.pid)
                wrk(d.url + "/healthz", duration=1, connections=connections)
                results[workers] = (wrk(d.url + "/healthz", duration=duration, connections=connections), rss)
            finally:
                d.stop()

    print(f"\n/healthz, wrk 1 thread, {connections} connections, {duration} s, 2-core machine")
    print(anchor.line("anchor: bare aiohttp (1 process)"))
    for workers, (res, _rss) in results.items():
        print(res.line(f"appliance --workers {workers}"))
    same = results[1][0]
    print(f"ratio appliance/anchor, same process count (1): {same.rps / anchor.rps:.2f}  (target >= 0.80)")
    print(f"ratio appliance --workers 2 / anchor: {results[2][0].rps / anchor.rps:.2f}")
    print(f"p99 ratio (1 process): {same.p99_ms / anchor.p99_ms:.2f}")
    for workers, (_res, rss) in results.items():
        mib = {k: v / 2**20 for k, v in rss.items()}
        print(f"idle RSS --workers {workers}: all {mib['all']:.1f} MiB "
              f"(appliance processes {mib['appliance']:.1f} MiB, nats-server {mib['nats_server']:.1f} MiB)")
    for workers, secs in ready_times:
        print(f"time from `appliance serve` to /readyz 200 (--workers {workers}): {secs:.2f} s  (target < 2 s)")


if __name__ == "__main__":
    main()
