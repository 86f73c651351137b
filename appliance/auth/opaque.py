"""Opaque random secrets (session ids, API tokens) and the hashes under which they are stored."""

import hashlib
import hmac
import secrets

SESSION_BYTES = 32
TOKEN_PREFIX = "apt_"  # noqa: S105 - a marker, not a secret


def new_secret(nbytes: int = SESSION_BYTES) -> str:
    """A URL-safe random secret with nbytes of entropy."""
    return secrets.token_urlsafe(nbytes)


def hash_secret(secret: str) -> str:
    """SHA-256 hex of a secret: enough for 256-bit random values, and cheap on every request."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def new_api_token() -> tuple[str, str]:
    """Return (token shown once, short prefix kept for display)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, token[: len(TOKEN_PREFIX) + 6]


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two secrets."""
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))
