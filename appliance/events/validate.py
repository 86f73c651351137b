"""Validation of webhook fields from the API: every problem is a 400 that names the field."""

from __future__ import annotations

import re
from typing import Any

from yarl import URL

from appliance.core.errors import bad_request
from appliance.db.events import DOMAIN_EVENTS

MAX_URL = 2048
MAX_DESCRIPTION = 500
MAX_HEADERS = 20
MAX_HEADER_VALUE = 1024
FIELDS = ("url", "events", "description", "headers", "enabled")
# Headers the appliance sets itself (the spec's three and the framing/identity ones) or that carry
# hop-by-hop meaning; a receiver must never see a webhook-configured value for them.
RESERVED_HEADERS = frozenset({
    "webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "content-length", "content-encoding",
    "transfer-encoding", "host", "user-agent", "connection", "keep-alive", "te", "trailer", "upgrade",
    "expect", "proxy-authorization", "proxy-connection", "cookie",
})
TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")


def _field_error(field: str, message: str) -> Exception:
    return bad_request("invalid_field", f"{field}: {message}", {"field": field})


def check_url(value: Any) -> str:
    """An absolute http(s) URL with a host, no credentials, no fragment."""
    if not isinstance(value, str) or not value.strip():
        raise _field_error("url", "must be a non-empty string")
    if len(value) > MAX_URL:
        raise _field_error("url", f"must be at most {MAX_URL} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise _field_error("url", "must not contain spaces or control characters")
    try:
        url = URL(value)
    except (ValueError, TypeError):
        raise _field_error("url", "is not a valid URL") from None
    if url.scheme not in ("http", "https"):
        raise _field_error("url", "must start with http:// or https://")
    if not url.host:
        raise _field_error("url", "must name a host")
    if url.user is not None or url.password is not None:
        raise _field_error("url", "must not carry credentials (use headers)")
    if url.fragment:
        raise _field_error("url", "must not have a #fragment")
    try:
        url.port  # noqa: B018 - an out-of-range port raises here
    except ValueError:
        raise _field_error("url", "has an invalid port") from None
    return value


def check_events(value: Any) -> list[str]:
    """A non-empty list of known event types, or ["*"] for all of them."""
    if not isinstance(value, list) or not value:
        raise _field_error("events", 'must be a non-empty list of event types, or ["*"]')
    if value == ["*"]:
        return ["*"]
    known = {t.value for t in DOMAIN_EVENTS}
    out: list[str] = []
    for item in value:
        if item == "*":
            raise _field_error("events", '"*" must be alone')
        if not isinstance(item, str) or item not in known:
            shown = item[:60] if isinstance(item, str) else repr(item)[:60]
            raise bad_request("invalid_field", f"events: unknown event type {shown!r}",
                              {"field": "events", "known": sorted(known)})
        if item not in out:
            out.append(item)
    return out


def check_headers(value: Any) -> dict[str, str]:
    """Extra request headers: valid names, not reserved, printable values, a bounded number."""
    if not isinstance(value, dict):
        raise _field_error("headers", "must be an object of header names to string values")
    if len(value) > MAX_HEADERS:
        raise _field_error("headers", f"at most {MAX_HEADERS} headers")
    out: dict[str, str] = {}
    for name, item in value.items():
        if not TOKEN.match(name):
            raise _field_error("headers", f"{name[:64]!r} is not a valid header name")
        lower = name.lower()
        if lower in RESERVED_HEADERS or lower.startswith("webhook-"):
            raise bad_request("reserved_header", f"headers: {name} is set by the appliance and cannot be configured",
                              {"field": "headers", "header": name})
        if lower in {k.lower() for k in out}:
            raise _field_error("headers", f"{name} is given twice")
        if not isinstance(item, str) or len(item) > MAX_HEADER_VALUE:
            raise _field_error("headers", f"{name}: the value must be a string of at most {MAX_HEADER_VALUE} "
                               "characters")
        if any(ord(ch) < 32 and ch != "\t" or ord(ch) == 127 for ch in item) or not item.isascii():
            raise _field_error("headers", f"{name}: the value must be printable ASCII")
        out[name] = item
    return out


def webhook_fields(body: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    """The validated fields of a create (url required) or a PATCH (any subset, at least one)."""
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise bad_request("invalid_field", f"unknown field {unknown[0]!r}", {"field": unknown[0]})
    if not partial and "url" not in body:
        raise _field_error("url", "is required")
    out: dict[str, Any] = {}
    if "url" in body:
        out["url"] = check_url(body["url"])
    if "events" in body:
        out["events"] = check_events(body["events"])
    if "description" in body:
        text = body["description"]
        if not isinstance(text, str) or len(text) > MAX_DESCRIPTION:
            raise _field_error("description", f"must be a string of at most {MAX_DESCRIPTION} characters")
        out["description"] = text
    if "headers" in body:
        out["headers"] = check_headers(body["headers"])
    if "enabled" in body:
        if not isinstance(body["enabled"], bool):
            raise _field_error("enabled", "must be true or false")
        out["enabled"] = body["enabled"]
    if partial and not out:
        raise bad_request("invalid_body", "nothing to change")
    return out
