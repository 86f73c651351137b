"""The events feature's declaration: domain events on JetStream and Standard Webhooks deliveries."""

from appliance.core.feature import Feature
from appliance.events.settings import EventsSettings, WebhookSettings

FEATURE = Feature(
    name="events",
    order=50,
    sections={"events": EventsSettings, "webhooks": WebhookSettings},
    setup="appliance.events.feature:setup",
    cli="appliance.events.cli:register",
    description="domain events relayed to JetStream; signed, retried, persisted webhook deliveries",
)
