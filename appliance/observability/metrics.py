"""Core Prometheus metrics and the /metrics endpoint, aggregated across worker processes.

Workers run prometheus-client in multiprocess mode (PROMETHEUS_MULTIPROC_DIR is set by the primary
before anything imports prometheus_client), so any worker can answer a scrape for all of them.
Labels are bounded: routes are reported by template, never by raw path.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import psutil
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

HTTP_REQUESTS = Counter(
    "appliance_http_requests_total", "HTTP requests by method, route template and status",
    ["method", "route", "status"],
)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
HTTP_LATENCY = Histogram(
    "appliance_http_request_duration_seconds", "HTTP request latency by route template",
    ["method", "route"], buckets=LATENCY_BUCKETS,
)
# Labelled by process role so that only processes that really run the app report them (helper processes
# that merely import this module create no sample), and livemin shows 0 if any worker is cut off.
DB_UP_BY_ROLE = Gauge("appliance_database_up", "1 when the database answers, by process role", ["process"],
                      multiprocess_mode="livemin")
NATS_CONNECTED_BY_ROLE = Gauge("appliance_nats_connected", "1 when connected to NATS, by process role", ["process"],
                               multiprocess_mode="livemin")


def process_role() -> str:
    """primary or worker (bounded label value)."""
    return "worker" if os.environ.get("APPLIANCE_PROCESS_ROLE") == "worker" else "primary"


class _RoleGauge:
    """A gauge child bound to this process's role on first use."""

    def __init__(self, gauge: Gauge) -> None:
        self._gauge = gauge

    def set(self, value: float) -> None:
        self._gauge.labels(process_role()).set(value)


DB_UP = _RoleGauge(DB_UP_BY_ROLE)
NATS_CONNECTED = _RoleGauge(NATS_CONNECTED_BY_ROLE)
NATS_SERVER_RESTARTS = Counter("appliance_nats_server_restarts_total", "Restarts of the embedded nats-server")
WORKER_RESTARTS = Counter("appliance_worker_restarts_total", "Restarts of HTTP worker processes")

_ALLOWED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    """The method, or OTHER: a client must not be able to invent label values."""
    return method if method in _ALLOWED_METHODS else "OTHER"


def prepare_multiprocess_dir(path: Path) -> None:
    """Empty the shared metrics folder at primary start-up and point prometheus-client at it."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(path)


def mark_dead(pid: int) -> None:
    """Forget the live gauges of a process that exited."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)


class SystemCollector(Collector):
    """Scrape-time figures: disk free, and memory and CPU of the whole process tree by part."""

    def __init__(self, paths: dict[str, Path]) -> None:
        self._paths = paths

    def collect(self):  # type: ignore[no-untyped-def,unused-ignore]
        """Yield the metric families (called by the registry at each scrape)."""
        disk = GaugeMetricFamily("appliance_disk_free_bytes", "Free bytes on the disk holding each path",
                                 labels=["path"])
        for name, path in self._paths.items():
            try:
                disk.add_metric([name], shutil.disk_usage(path).free)
            except OSError:
                continue
        yield disk
        rss = GaugeMetricFamily("appliance_process_resident_memory_bytes",
                                "Resident memory of the process tree by part", labels=["part"])
        cpu = GaugeMetricFamily("appliance_process_cpu_seconds", "CPU seconds of the process tree by part",
                                labels=["part"])
        for part, (mem, secs) in process_tree_usage().items():
            rss.add_metric([part], mem)
            cpu.add_metric([part], secs)
        yield rss
        yield cpu


def process_tree_usage() -> dict[str, tuple[int, float]]:
    """(rss, cpu seconds) summed for primary, workers, nats_server and other children."""
    me = psutil.Process()
    # The primary is the process that owns the tree: this one, or its parent when this is a worker.
    root = me
    if os.environ.get("APPLIANCE_PROCESS_ROLE") == "worker":
        try:
            parent = me.parent()
            if parent is not None:
                root = parent
        except psutil.Error:
            pass
    totals: dict[str, tuple[int, float]] = {}

    def add(part: str, proc: psutil.Process) -> None:
        try:
            with proc.oneshot():
                mem = proc.memory_info().rss
                t = proc.cpu_times()
        except psutil.Error:
            return
        old = totals.get(part, (0, 0.0))
        totals[part] = (old[0] + mem, old[1] + t.user + t.system)

    add("primary", root)
    try:
        children = root.children(recursive=True)
    except psutil.Error:
        children = []
    for child in children:
        try:
            name = child.name()
            env_role = "worker" if "appliance" in " ".join(child.cmdline()[:4]) else ""
        except psutil.Error:
            continue
        if name.startswith("nats-server"):
            add("nats_server", child)
        elif env_role:
            add("workers", child)
        else:
            add("other", child)
    return totals


def render(paths: dict[str, Path]) -> bytes:
    """The exposition text for a scrape: every process's metrics when in multiprocess mode."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        from prometheus_client import REGISTRY

        body = generate_latest(REGISTRY)
    system = CollectorRegistry()
    system.register(SystemCollector(paths))
    return body + generate_latest(system)
