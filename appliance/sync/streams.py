"""The sync engine's JetStream stream, its subjects and the per-provider durable consumer."""

from __future__ import annotations

import contextlib

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from appliance.bus import subjects
from appliance.bus.specs import STREAMS, StreamSpec

OUTBOX_PREFIX = f"{subjects.ROOT}.sync.outbox"
STREAM = "SYNC_OUTBOX"


def outbox_subject(topic: str) -> str:
    """appliance.sync.outbox.<topic>, e.g. appliance.sync.outbox.roster.user.created."""
    return f"{OUTBOX_PREFIX}.{topic}"


def durable_name(provider_id: int) -> str:
    """The durable consumer of one provider."""
    return f"sync-push-{provider_id}"


def stream_spec(max_age_days: float = 30.0) -> StreamSpec:
    """Roster changes waiting for providers; kept by age (every provider reads every record)."""
    return StreamSpec(
        name=STREAM,
        subjects=(f"{OUTBOX_PREFIX}.>",),
        max_age_s=max_age_days * 86400,
        max_bytes=1024 * 1024 * 1024,
        duplicate_window_s=600.0,
    )


def register(max_age_days: float) -> None:
    """Add (or replace) the sync stream in the core's list, which the primary creates at start-up."""
    STREAMS[:] = [s for s in STREAMS if s.name != STREAM]
    STREAMS.append(stream_spec(max_age_days))


async def ensure_consumer(js: JetStreamContext, provider_id: int, *, ack_wait_s: float, max_ack_pending: int) -> str:
    """Create the provider's durable pull consumer (idempotent) and return its name."""
    name = durable_name(provider_id)
    await js.add_consumer(
        STREAM,
        ConsumerConfig(
            durable_name=name,
            filter_subject=f"{OUTBOX_PREFIX}.>",
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=ack_wait_s,
            max_deliver=-1,
            max_ack_pending=max_ack_pending,
        ),
    )
    return name


async def delete_consumer(js: JetStreamContext, provider_id: int) -> None:
    """Drop a provider's consumer (archived providers stop holding the stream)."""
    from nats.js.errors import NotFoundError

    with contextlib.suppress(NotFoundError):
        await js.delete_consumer(STREAM, durable_name(provider_id))
