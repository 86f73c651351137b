"""Every NATS subject the appliance uses is built here: appliance.<area>.<event>."""

ROOT = "appliance"
EVENTS = f"{ROOT}.events"
ALLOWED_SUBJECTS = (f"{ROOT}.>", "$JS.>", "_INBOX.>", "$KV.>", "$JSC.>")


def event(area: str, name: str) -> str:
    """A domain event subject, e.g. appliance.events.video.available."""
    return f"{EVENTS}.{area}.{name}"


def domain_event(event_type: str) -> str:
    """The subject of a domain event type: appliance.events.<type>, e.g. appliance.events.user.created."""
    return f"{EVENTS}.{event_type}"


def probe() -> str:
    """The subject the readiness check round-trips through the server."""
    return f"{ROOT}.health.probe"


def media_fetch() -> str:
    """The video download work queue (JetStream, stream MEDIA_JOBS)."""
    return f"{ROOT}.media.fetch"


def media_progress() -> str:
    """Live download progress and state changes of videos (core NATS, not stored)."""
    return f"{ROOT}.media.progress"


def content_rescan() -> str:
    """Request/reply: an HTTP worker asks the primary (which owns library scanning) to rescan now."""
    return f"{ROOT}.content.rescan"
