"""The EVENTS stream on JetStream, declared with the retention limits of [events]."""

from __future__ import annotations

from appliance.bus import subjects
from appliance.bus.specs import STREAMS, StreamSpec
from appliance.events.settings import EventsSettings

STREAM = "EVENTS"


def stream_spec(settings: EventsSettings) -> StreamSpec:
    """Domain events kept by age and size (the oldest go first) for a hub or other consumers to read."""
    return StreamSpec(
        name=STREAM,
        subjects=(f"{subjects.EVENTS}.>",),
        max_age_s=settings.stream_max_age_days * 86400,
        max_bytes=settings.stream_max_bytes,
        duplicate_window_s=600.0,
    )


def register(settings: EventsSettings) -> None:
    """Replace the core's default EVENTS declaration with the configured one (created by the primary)."""
    STREAMS[:] = [s for s in STREAMS if s.name != STREAM]
    STREAMS.append(stream_spec(settings))
