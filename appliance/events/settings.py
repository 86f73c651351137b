"""Configuration sections [events] (the event stream and its retention) and [webhooks] (deliveries)."""

from dataclasses import dataclass

from appliance.core.settings import setting


@dataclass(frozen=True)
class EventsSettings:
    """[events]: relaying domain events to JetStream and how long they are kept."""

    enabled: bool = setting(True, help="relay domain events to JetStream and run webhook deliveries in the primary")
    relay_interval_s: float = setting(0.2, help="how often the relay looks for unpublished events", min=0.01, max=60)
    relay_batch: int = setting(500, help="events published per relay round", min=1, max=10000)
    stream_max_age_days: float = setting(
        7.0, help="how long events stay in the JetStream EVENTS stream (a hub sourcing it may catch up)", min=0.01
    )
    stream_max_bytes: int = setting(
        256 * 1024 * 1024, help="size limit of the EVENTS stream; the oldest events go first", min=1024 * 1024
    )
    retention_days: float = setting(
        30.0, help="events and finished webhook deliveries (with their log) older than this are deleted from "
        "the database", min=0.01,
    )


@dataclass(frozen=True)
class WebhookSettings:
    """[webhooks]: Standard Webhooks deliveries: timeouts, retries, auto-disable, secret rotation."""

    request_timeout_s: float = setting(15.0, help="timeout of one delivery request, connect included", min=0.1)
    connect_timeout_s: float = setting(5.0, help="timeout of opening the connection of a delivery", min=0.1)
    max_response_bytes: int = setting(
        4096, help="bytes of a receiver's answer read (the rest is dropped; the log keeps an excerpt)",
        min=0, max=1024 * 1024,
    )
    retry_initial_s: float = setting(5.0, help="wait before the first retry; doubles per attempt", min=0.01)
    retry_max_interval_s: float = setting(3600.0, help="longest wait between two attempts", min=0.01)
    retry_window_s: float = setting(
        86400.0, help="a delivery is retried for this long after its event, then given up as failed", min=1
    )
    disable_after_failures: int = setting(
        50, help="consecutive failed attempts that disable a webhook (0: never disable)", min=0
    )
    disable_after_s: float = setting(
        86400.0, help="...and only when the failures span at least this long", min=0
    )
    secret_overlap_s: float = setting(
        86400.0, help="after rotate-secret, the previous secret also signs deliveries for this long", min=0
    )
    concurrency: int = setting(64, help="deliveries in flight across all webhooks", min=1, max=1024)
    per_webhook_concurrency: int = setting(16, help="deliveries in flight to one webhook", min=1, max=256)
    max_webhooks: int = setting(100, help="how many webhooks may be configured", min=1, max=10000)
