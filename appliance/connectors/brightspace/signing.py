"""Valence ID-key signing, exactly as Brightspace's own SDKs sign (pure functions, no I/O).

Source: Brightspace/valence-sdk-javascript `lib/valence.js` (`D2L.Util.Sign`, `calculateSkew`,
`UserContext.createAuthenticatedUrl`) and its specs, Apache-2.0. The base string is
`METHOD&/url-decoded/lowercased/path&timestamp`; each signature is HMAC-SHA256 of it, base64 with `+`→`-`,
`/`→`_` and no `=` padding: `x_c` with the app key, `x_d` with the user key. The query string is not signed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from urllib.parse import unquote

SKEW_RE = re.compile(r"^Timestamp out of range\s*([0-9]+)")


def b64url(raw: bytes) -> str:
    """Valence's base64 flavour: URL-safe alphabet, padding removed."""
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def sign(data: str, key: str) -> str:
    """HMAC-SHA256 of `data` under `key`, b64url-encoded (the SDKs' `Sign(data, key)`)."""
    return b64url(hmac.new(key.encode("utf-8"), data.encode("utf-8"), hashlib.sha256).digest())


def base_string(method: str, path: str, timestamp: int) -> str:
    """What is signed: upper-case method, URL-decoded lower-cased path without its query, the timestamp."""
    return f"{method.upper()}&{unquote(path.split('?', 1)[0]).lower()}&{timestamp}"


def signed_params(
    method: str, path: str, timestamp: int, *, app_id: str, app_key: str, user_id: str, user_key: str
) -> dict[str, str]:
    """The five x_* query parameters of one ID-key call."""
    base = base_string(method, path, timestamp)
    return {
        "x_a": app_id,
        "x_b": user_id,
        "x_c": sign(base, app_key),
        "x_d": sign(base, user_key),
        "x_t": str(timestamp),
    }


def server_time(body: str) -> int | None:
    """The server's clock from a 403 `Timestamp out of range\\r\\n<unix seconds>` body, else None."""
    found = SKEW_RE.match(body.strip())
    return int(found.group(1)) if found else None
