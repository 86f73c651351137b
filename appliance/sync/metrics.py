"""Prometheus metrics of the sync engine (labels are bounded: provider ids and fixed words only)."""

from prometheus_client import Counter, Gauge, Histogram

RELAYED = Counter("appliance_sync_relayed_records_total", "Outbox rows published to JetStream")
RELAY_FAILURES = Counter("appliance_sync_relay_failures_total", "Relay rounds that could not publish")
PUSHED = Counter(
    "appliance_sync_pushed_records_total", "Records settled per provider and outcome", ["provider", "outcome"]
)
PUSH_SECONDS = Histogram(
    "appliance_sync_push_seconds",
    "Time to push one record upstream",
    ["provider"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
UPSTREAM_ERRORS = Counter("appliance_sync_upstream_errors_total", "Upstream failures by kind", ["provider", "kind"])
QUEUE_DEPTH = Gauge(
    "appliance_sync_queue_depth_records", "Records waiting for a provider", ["provider"], multiprocess_mode="max"
)
OLDEST_PENDING = Gauge(
    "appliance_sync_oldest_pending_age_seconds",
    "Age of the oldest waiting record",
    ["provider"],
    multiprocess_mode="max",
)
DEAD_LETTERS = Gauge("appliance_sync_dead_letters_open", "Open dead letters", ["provider"], multiprocess_mode="max")
UPLINK_UP = Gauge("appliance_sync_uplink_up", "1 while the provider answers", ["provider"], multiprocess_mode="max")
RUNS = Counter("appliance_sync_runs_total", "Pull/report runs by job and result", ["provider", "job", "result"])
PULLED = Counter("appliance_sync_pulled_records_total", "Records read from upstream", ["provider", "kind"])
