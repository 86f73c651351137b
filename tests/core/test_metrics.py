"""/metrics parses with prometheus-client's parser and counts requests served by two worker processes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.daemon import start_daemon

pytestmark = pytest.mark.slow


def _samples(text: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        out.setdefault(family.name, []).extend(family.samples)
    return out


def test_metrics_aggregate_two_workers_with_bounded_labels(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path, workers=2)
    try:
        metrics_dir = tmp_path / "var" / "run" / "metrics"
        n = 0
        deadline = time.monotonic() + 30
        # A fresh connection each time, so SO_REUSEPORT spreads them over both processes; keep going
        # until both have answered (the worker may still be starting when the primary is ready).
        pids = [daemon.pid] + [p.pid for p in daemon.tree() if "appliance.worker" in " ".join(p.cmdline())]
        assert len(pids) == 2

        def served(pid: int) -> bool:
            path = metrics_dir / f"counter_{pid}.db"
            return path.exists() and b'"/healthz"' in path.read_bytes()

        while n < 100 or not all(served(pid) for pid in pids):
            status, _ = daemon.get("/healthz")
            assert status == 200
            n += 1
            assert time.monotonic() < deadline, "the second process never served a request"
        for i in range(20):
            daemon.get(f"/api/v1/users/{i}/secret-{i}")  # raw paths must not become label values
        # Each process flushes its buffered HTTP metrics once a second: poll until every request shows.
        deadline = time.monotonic() + 10
        while True:
            status, body = daemon.get("/metrics")
            assert status == 200
            samples = _samples(body.decode())
            requests = samples["appliance_http_requests"]
            healthz = [s for s in requests if s.labels["route"] == "/healthz" and s.name.endswith("_total")]
            if sum(s.value for s in healthz) == n or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert sum(s.value for s in healthz) == n
        routes = {s.labels["route"] for s in requests}
        assert not any("secret" in r for r in routes), routes
        latency = samples["appliance_http_request_duration_seconds"]
        assert any(s.name.endswith("_bucket") for s in latency)
        parts = {s.labels["part"] for s in samples["appliance_process_resident_memory_bytes"]}
        assert {"primary", "workers", "nats_server"} <= parts
        assert samples["appliance_disk_free_bytes"]
        connected = {s.labels["process"]: s.value for s in samples["appliance_nats_connected"]}
        assert connected == {"primary": 1.0, "worker": 1.0}
        assert {s.labels["process"]: s.value for s in samples["appliance_database_up"]} == connected
    finally:
        daemon.stop()
