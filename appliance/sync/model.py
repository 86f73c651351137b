"""The states and kinds of the sync engine, one enum each (values are what the database stores)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class ProviderType(Enum):
    """The provider types the appliance has always known (a provider of one sits `disabled` until a connector
    serves it); a connector installed as a plugin adds its own types through the registry."""

    CANVAS_OSS = "canvas_oss"
    CANVAS_CLOUD = "canvas_cloud"
    KOLIBRI = "kolibri"
    BRIGHTSPACE = "brightspace"
    MOODLE = "moodle"


class ProviderState(Enum):
    """What the admin chose."""

    ENABLED = "enabled"
    DISABLED = "disabled"
    ARCHIVED = "archived"


class RuntimeState(Enum):
    """What the engine found (Home Assistant style: ready / not ready / auth failed)."""

    READY = "ready"
    RETRYING = "retrying"
    AUTH_FAILED = "auth_failed"
    DISABLED = "disabled"


class Uplink(Enum):
    """Whether the provider answers."""

    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"


class DeliveryState(Enum):
    """Outcome of one outbox row for one provider."""

    SENDING = "sending"  # an upstream call may have happened: look before creating
    DONE = "done"
    SKIPPED = "skipped"
    DEAD = "dead"


class DeadLetterState(Enum):
    """A rejected record waiting for an admin."""

    OPEN = "open"
    RETRYING = "retrying"
    RESOLVED = "resolved"


class Job(Enum):
    """Scheduled work per provider."""

    PULL = "pull"
    REPORT = "report"


class Trigger(Enum):
    """Why a run happened."""

    SCHEDULE = "schedule"
    CATCH_UP = "catch_up"
    MANUAL = "manual"


class RunState(Enum):
    """Lifecycle of a sync run."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class Provider:
    """A provider row with its credentials decrypted (never rendered to clients)."""

    id: int
    type: str  # a ProviderType value or a type a registered connector serves
    name: str
    base_url: str
    account_id: str
    credentials: dict[str, str]
    facility_id: int | None
    state: ProviderState
    push_roster: bool
    outbox_floor: int
    created_at: str
