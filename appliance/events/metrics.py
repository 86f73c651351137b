"""Prometheus metrics of domain events and webhook deliveries (bounded labels: fixed words only)."""

from prometheus_client import Counter, Gauge, Histogram

RELAYED = Counter("appliance_events_relayed_total", "Domain events published to JetStream")
RELAY_FAILURES = Counter("appliance_events_relay_failures_total", "Relay rounds that could not publish")
FANNED_OUT = Counter("appliance_webhook_deliveries_created_total", "Webhook deliveries queued")
ATTEMPTS = Counter("appliance_webhook_attempts_total", "Webhook delivery attempts by outcome", ["outcome"])
LATENCY = Histogram(
    "appliance_webhook_attempt_seconds", "Time of one webhook delivery request",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
GIVEN_UP = Counter("appliance_webhook_deliveries_failed_total", "Deliveries given up after the retry window")
DISABLED = Counter("appliance_webhooks_disabled_total", "Webhooks disabled after consecutive failures")
PENDING = Gauge("appliance_webhook_deliveries_pending", "Deliveries waiting to be sent or retried",
                multiprocess_mode="max")
