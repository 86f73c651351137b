"""Moodle web services REST client: one endpoint, PHP-style array parameters, errors that arrive as HTTP 200.

Every call is a POST of `wstoken`, `wsfunction`, `moodlewsrestformat=json` and the function's parameters
form-encoded with PHP bracket names (`users[0][username]=ada`). Moodle answers an error with status 200 and
a body `{"exception", "errorcode", "message"}`, so the body, not the status, says whether a call worked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
from yarl import URL

from appliance.connectors.errors import (
    AuthFailed,
    Malformed,
    NotFound,
    NotPermitted,
    Rejected,
    Transient,
    UpstreamError,
)
from appliance.connectors.payload import parse_json, read_capped

ENDPOINT = "/webservice/rest/server.php"
# Moodle error codes by what the engine should do about them.
AUTH_CODES = {"invalidtoken", "requireloginerror", "usernotfullysetup", "sitemaintenance", "restoredaccountwarning"}
PERMISSION_CODES = {"accessexception", "nopermissions", "servicenotavailable", "webservicesnotenabled",
                    "ipaddressnotallowed", "nopermissiontoviewusers"}
MISSING_CODES = {"invalidrecord", "invalidrecordunknown", "invalidcourseid", "invaliduser"}
TRANSIENT_CODES = {"dbconnectionfailed", "dmlreadexception", "dmlwriteexception"}


def php_params(prefix: str, value: Any) -> list[tuple[str, str]]:
    """Flatten a value into PHP bracket form: php_params("users", [{"a": 1}]) → [("users[0][a]", "1")]."""
    if isinstance(value, Mapping):
        return [p for key, item in value.items() for p in php_params(f"{prefix}[{key}]", item)]
    if isinstance(value, list | tuple):
        return [p for i, item in enumerate(value) for p in php_params(f"{prefix}[{i}]", item)]
    if isinstance(value, bool):
        return [(prefix, "1" if value else "0")]
    return [(prefix, "" if value is None else str(value))]


def encode(args: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A function's arguments as form fields (top-level names stay bare)."""
    return [p for name, value in args.items() for p in php_params(name, value)]


def classify(body: Any) -> UpstreamError | None:
    """A Moodle error body (`exception`, or `error` from login/token.php) → a failure kind; None if none."""
    if not isinstance(body, dict) or not ("exception" in body or ("errorcode" in body and "error" in body)):
        return None
    code = str(body.get("errorcode") or "")
    exception = str(body.get("exception") or "")
    message = f"Moodle {code or exception}: {body.get('message') or body.get('error') or 'error'}"
    if body.get("debuginfo"):  # the reason, when the site runs in debug mode
        message += f" ({str(body['debuginfo'])[:300]})"
    if code in AUTH_CODES:
        return AuthFailed(message)
    if code in PERMISSION_CODES or exception.endswith("webservice_access_exception"):
        return NotPermitted(200, body, message)
    if code in MISSING_CODES or exception.endswith("dml_missing_record_exception"):
        return NotFound(200, body, message)
    if code in TRANSIENT_CODES:
        return Transient(message)
    return Rejected(200, body, message)


class MoodleClient:
    """One Moodle site reached with one web service token over a shared session."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str, *, timeout: float = 30.0) -> None:
        self.session = session
        self.base = URL(base_url.rstrip("/"))
        self.token = token
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.calls = 0

    async def call(self, function: str, args: Mapping[str, Any] | None = None, *, timeout: float | None = None) -> Any:
        """Call one web service function; returns its JSON result or raises a classified UpstreamError."""
        form = [("wstoken", self.token), ("wsfunction", function), ("moodlewsrestformat", "json"),
                *encode(args or {})]
        limit = aiohttp.ClientTimeout(total=timeout) if timeout is not None else self.timeout
        self.calls += 1
        try:
            # POST keeps the token out of URLs (and out of any proxy's access log).
            async with self.session.post(
                self.base.with_path(self.base.path.rstrip("/") + ENDPOINT), data=form, timeout=limit,
                allow_redirects=False, headers={"Accept": "application/json"},
            ) as response:
                raw = await read_capped(response)
                status, content_type = response.status, response.headers.get("Content-Type", "")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise Transient(f"{type(exc).__name__}: {exc}".strip(": ")) from exc
        if status >= 500 or status in (408, 425, 429):
            raise Transient(f"Moodle answered {status}")
        if status in (401, 403):
            raise NotPermitted(status, raw[:500].decode("utf-8", "replace"), f"Moodle answered {status}")
        if status == 404:
            raise NotFound(404, None, f"no Moodle web services at {self.base} (404)")
        if status >= 300:
            raise Rejected(status, raw[:500].decode("utf-8", "replace"), f"Moodle answered {status}")
        data = parse_json(raw, status, content_type)
        failure = classify(data)
        if failure is not None:
            raise failure
        return data

    async def call_dict(self, function: str, args: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A call whose result must be an object."""
        data = await self.call(function, args)
        if not isinstance(data, dict):
            raise Malformed(f"Moodle {function}: expected an object, got {type(data).__name__}")
        return data

    async def call_list(self, function: str, args: Mapping[str, Any] | None = None) -> list[Any]:
        """A call whose result must be an array."""
        data = await self.call(function, args)
        if not isinstance(data, list):
            raise Malformed(f"Moodle {function}: expected a list, got {type(data).__name__}")
        return data
