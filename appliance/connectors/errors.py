"""How an upstream call failed, in the four kinds the sync engine treats differently."""

from __future__ import annotations

from typing import Any


class UpstreamError(Exception):
    """Base of every classified upstream failure."""


class Transient(UpstreamError):
    """Unreachable, timed out or 5xx: the uplink is suspect; retry later without spending an attempt."""


class Throttled(UpstreamError):
    """The upstream asked us to slow down (Canvas 403 `Rate Limit Exceeded` or 429)."""

    def __init__(self, retry_after: float, message: str = "rate limit exceeded") -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AuthFailed(UpstreamError):
    """Credentials missing, invalid, expired or revoked (401 with WWW-Authenticate)."""


class Rejected(UpstreamError):
    """The upstream refused this record (4xx); `body` keeps its error body for the dead letter."""

    def __init__(self, status: int, body: Any, message: str = "") -> None:
        super().__init__(message or f"upstream rejected the request with {status}")
        self.status = status
        self.body = body


class NotPermitted(Rejected):
    """Authenticated but not allowed (Canvas 401 without WWW-Authenticate, or 403)."""


class NotFound(Rejected):
    """The object does not exist upstream (404)."""


class Malformed(Rejected):
    """The upstream answered something its API never promises: not JSON, the wrong shape, a page that
    never ends, a body over the size cap. Retrying will not help; a pull run fails with this message."""

    def __init__(self, message: str, status: int = 200, body: Any = None) -> None:
        super().__init__(status, body, message)


class ForeignLink(UpstreamError):
    """A pagination (or other follow-up) link points away from the provider's own origin: never followed,
    because the request would carry the provider's credentials to whoever the upstream names."""
