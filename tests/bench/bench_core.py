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


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--short", action="store_true", help="3 rounds of 2 s instead of 7 rounds of 4 s")
    args = parser.parse_args()
    rounds, seconds = (3, 2) if args.short else (7, 4)
    connections = 50

    port = _port()
    hello = start_hello(port)
    anchor_url = f"http://127.0.0.1:{port}/healthz"
    report = []
    try:
        for workers in (1, 2):
            with tempfile.TemporaryDirectory() as tmp:
                d = daemon(Path(tmp), workers=workers)
                try:
                    ready = d.ready_after_s
                    time.sleep(2)  # let workers settle before measuring idle memory
                    rss = tree_rss(d.pid)
                    wrk(anchor_url, duration=1, connections=connections)
                    wrk(d.url + "/healthz", duration=1, connections=connections)
                    # Alternate short runs so that both see the same background load; report medians.
                    anchors, ours = [], []
                    for _ in range(rounds):
                        anchors.append(wrk(anchor_url, duration=seconds, connections=connections))
                        ours.append(wrk(d.url + "/healthz", duration=seconds, connections=connections))
                    report.append((workers, ready, rss, anchors, ours))
                finally:
                    d.stop()
    finally:
        hello.terminate()
        hello.wait()

    print(f"\n/healthz, wrk 1 thread, {connections} connections, {rounds} alternating rounds of {seconds} s")
    for workers, ready, rss, anchors, ours in report:
        ratios = [o.rps / a.rps for a, o in zip(anchors, ours, strict=True)]
        a_rps, o_rps = _median([a.rps for a in anchors]), _median([o.rps for o in ours])
        a_p50, o_p50 = _median([a.p50_ms for a in anchors]), _median([o.p50_ms for o in ours])
        a_p99, o_p99 = _median([a.p99_ms for a in anchors]), _median([o.p99_ms for o in ours])
        mib = {k: v / 2**20 for k, v in rss.items()}
        print(f"--workers {workers}:")
        print(f"  anchor (bare aiohttp, 1 process): {a_rps:8.0f} req/s  p50 {a_p50:6.2f} ms  p99 {a_p99:6.2f} ms")
        print(f"  appliance (full stack):           {o_rps:8.0f} req/s  p50 {o_p50:6.2f} ms  p99 {o_p99:6.2f} ms")
        print(f"  throughput ratio appliance/anchor: median {_median(ratios):.2f} "
              f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})  target >= 0.80")
        print(f"  idle RSS: all {mib['all']:.1f} MiB (appliance {mib['appliance']:.1f} MiB, "
              f"nats-server {mib['nats_server']:.1f} MiB)")
        print(f"  `appliance serve` to /readyz 200: {ready:.2f} s  (target < 2 s)")


if __name__ == "__main__":
    main()
