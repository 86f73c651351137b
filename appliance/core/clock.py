"""Time as a dependency, so tests can move it instead of sleeping."""

import time
from datetime import UTC, datetime, timedelta


def iso(dt: datetime) -> str:
    """Format an aware datetime the way the database stores timestamps (ISO-8601 UTC, milliseconds, Z)."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


class Clock:
    """The real clock."""

    def now(self) -> datetime:
        """The current time, aware, in UTC."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """Seconds from an arbitrary point; never goes back."""
        return time.monotonic()

    def iso_now(self) -> str:
        """now() formatted for the database."""
        return iso(self.now())


class FakeClock(Clock):
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._mono = 1000.0

    def now(self) -> datetime:
        """The fake current time."""
        return self._now

    def monotonic(self) -> float:
        """The fake monotonic time."""
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move both clocks forward."""
        self._now += timedelta(seconds=seconds)
        self._mono += seconds
