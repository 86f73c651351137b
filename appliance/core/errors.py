"""API errors: raise them anywhere in a handler; the error middleware renders the JSON envelope."""

from typing import Any


class ApiError(Exception):
    """An error meant for the client: HTTP status, stable machine code, human message, optional details."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


def bad_request(code: str, message: str, details: Any = None) -> ApiError:
    """400 with a specific code, e.g. invalid_parameter."""
    return ApiError(400, code, message, details)


def unauthorized(message: str = "sign-in required") -> ApiError:
    """401: no or invalid credentials."""
    return ApiError(401, "unauthorized", message)


def forbidden(message: str = "not allowed") -> ApiError:
    """403: signed in, but not permitted."""
    return ApiError(403, "forbidden", message)


def not_found(message: str = "not found") -> ApiError:
    """404."""
    return ApiError(404, "not_found", message)


def conflict(message: str, details: Any = None) -> ApiError:
    """409: the request clashes with the current state."""
    return ApiError(409, "conflict", message, details)


def too_large(limit: int) -> ApiError:
    """413: the body is over the configured limit."""
    return ApiError(413, "payload_too_large", f"request body is larger than {limit} bytes", {"limit": limit})


def too_many(retry_after: int, message: str = "too many requests") -> ApiError:
    """429 with Retry-After."""
    return ApiError(429, "rate_limited", message, {"retry_after": retry_after},
                    headers={"Retry-After": str(max(1, retry_after))})


def unavailable(message: str, retry_after: int = 1, code: str = "unavailable") -> ApiError:
    """503 with Retry-After: busy or a dependency is down; the client may try again."""
    return ApiError(503, code, message, {"retry_after": retry_after},
                    headers={"Retry-After": str(max(1, retry_after))})
