"""Streams and durable consumers, declared in code and created idempotently at start-up."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError

from appliance.bus import subjects

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable pull consumer."""

    durable: str
    filter_subject: str | None = None
    ack_wait_s: float = 60.0
    max_deliver: int = -1
    max_ack_pending: int = 1000


@dataclass(frozen=True)
class StreamSpec:
    """A stream and its consumers."""

    name: str
    subjects: tuple[str, ...]
    retention: RetentionPolicy = RetentionPolicy.LIMITS
    max_age_s: float = 0
    max_bytes: int = -1
    duplicate_window_s: float = 120.0
    storage: StorageType = StorageType.FILE
    consumers: tuple[ConsumerSpec, ...] = field(default_factory=tuple)

    def config(self) -> StreamConfig:
        """The nats-py StreamConfig."""
        return StreamConfig(
            name=self.name,
            subjects=list(self.subjects),
            retention=self.retention,
            max_age=self.max_age_s or None,
            max_bytes=self.max_bytes,
            duplicate_window=self.duplicate_window_s,
            storage=self.storage,
            discard=DiscardPolicy.OLD,
        )


# Domain events: kept for a week so webhooks and a central hub (leaf-node sourcing) can catch up.
EVENTS = StreamSpec(
    name="EVENTS",
    subjects=(f"{subjects.EVENTS}.>",),
    max_age_s=7 * 24 * 3600,
    max_bytes=256 * 1024 * 1024,
)

STREAMS: list[StreamSpec] = [EVENTS]
"""Every stream of the appliance; features append their specs here at import time."""


async def ensure_streams(js: JetStreamContext, specs: list[StreamSpec]) -> None:
    """Create or update every stream and durable consumer (idempotent)."""
    for spec in specs:
        config = spec.config()
        try:
            await js.stream_info(spec.name)
            await js.update_stream(config)
        except NotFoundError:
            await js.add_stream(config)
            log.info("created stream %s", spec.name)
        for consumer in spec.consumers:
            await js.add_consumer(
                spec.name,
                ConsumerConfig(
                    durable_name=consumer.durable,
                    filter_subject=consumer.filter_subject,
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.ALL,
                    ack_wait=consumer.ack_wait_s,
                    max_deliver=consumer.max_deliver,
                    max_ack_pending=consumer.max_ack_pending,
                ),
            )
