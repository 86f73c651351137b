"""The buffered HTTP metrics write exactly what prometheus-client's own observe() would."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from appliance.observability import httpmetrics
from appliance.observability.metrics import LATENCY_BUCKETS


def test_flush_matches_direct_observe(monkeypatch: pytest.MonkeyPatch) -> None:
    buffered, direct = CollectorRegistry(), CollectorRegistry()

    def pair(registry: CollectorRegistry) -> tuple[Counter, Histogram]:
        return (Counter("t_requests_total", "r", ["method", "route", "status"], registry=registry),
                Histogram("t_latency_seconds", "l", ["method", "route"], buckets=LATENCY_BUCKETS, registry=registry))

    b_count, b_hist = pair(buffered)
    d_count, d_hist = pair(direct)
    monkeypatch.setattr(httpmetrics, "HTTP_REQUESTS", b_count)
    monkeypatch.setattr(httpmetrics, "HTTP_LATENCY", b_hist)
    buffer = httpmetrics.HttpMetricsBuffer()
    samples = [0.0, 0.0009, 0.001, 0.0011, 0.004, 0.05, 0.3, 1.0, 7.5, 10.0, 11.0, 99.0]
    for i, seconds in enumerate(samples):
        route, status = ("/a", "200") if i % 2 else ("/b/{id}", "404")
        buffer.observe("GET", route, status, seconds)
        d_count.labels("GET", route, status).inc()
        d_hist.labels("GET", route).observe(seconds)
    buffer.flush()
    buffer.flush()  # a second flush with nothing pending changes nothing

    def body(registry: CollectorRegistry) -> list[str]:
        return sorted(ln for ln in generate_latest(registry).decode().splitlines() if "_created" not in ln)

    assert body(buffered) == body(direct)


def test_buffered_counter_increments_reach_the_counter_at_flush() -> None:
    registry = CollectorRegistry()
    counter = Counter("t_bytes_total", "b", ["backend"], registry=registry)
    buffer = httpmetrics.HttpMetricsBuffer()
    disk = counter.labels("disk")
    for amount in (512, 1024, 4):
        buffer.inc(disk, amount)
    buffer.inc(counter.labels("s3"), 7)
    assert registry.get_sample_value("t_bytes_total", {"backend": "disk"}) == 0
    buffer.flush()
    assert registry.get_sample_value("t_bytes_total", {"backend": "disk"}) == 1540
    assert registry.get_sample_value("t_bytes_total", {"backend": "s3"}) == 7
    buffer.flush()
    assert registry.get_sample_value("t_bytes_total", {"backend": "disk"}) == 1540
