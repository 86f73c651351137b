"""The JSON envelope, pagination parameters and safe body reading."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from appliance.core.errors import ApiError, bad_request, too_large

MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 20


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def ok(data: Any, *, meta: dict[str, Any] | None = None, status: int = 200,
       headers: dict[str, str] | None = None) -> web.Response:
    """Success envelope: {"data": ..., "meta": {...}}."""
    return web.json_response({"data": data, "meta": meta or {}}, status=status, dumps=_dumps, headers=headers)


def error_body(err: ApiError) -> dict[str, Any]:
    """Error envelope for an ApiError."""
    return {"error": {"code": err.code, "message": err.message, "details": err.details}}


@dataclass(frozen=True)
class Page:
    """Validated page request."""

    page: int
    per_page: int

    @property
    def offset(self) -> int:
        """Rows to skip."""
        return (self.page - 1) * self.per_page

    @property
    def limit(self) -> int:
        """Rows to return."""
        return self.per_page


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.lstrip("-").isdigit() or len(raw) > 12:
        raise bad_request("invalid_parameter", f"{name} must be an integer", {"parameter": name, "value": raw[:40]})
    value = int(raw)
    if not low <= value <= high:
        raise bad_request(
            "invalid_parameter", f"{name} must be between {low} and {high}",
            {"parameter": name, "value": value, "min": low, "max": high},
        )
    return value


def page_params(request: web.Request, *, default_per_page: int = DEFAULT_PER_PAGE,
                max_per_page: int = MAX_PER_PAGE) -> Page:
    """page (>= 1) and per_page (1..max), or a 400 that names the parameter and says why."""
    page = _int_param(request, "page", 1, 1, 10_000_000)
    per_page = _int_param(request, "per_page", default_per_page, 1, max_per_page)
    return Page(page, per_page)


def page_meta(page: Page, total: int) -> dict[str, Any]:
    """Meta block of a paginated list."""
    total_pages = max(1, math.ceil(total / page.per_page)) if total else 0
    return {
        "page": page.page,
        "per_page": page.per_page,
        "total": total,
        "total_pages": total_pages,
        "has_next": page.page < total_pages,
        "has_prev": page.page > 1,
    }


def paginated(items: list[Any], page: Page, total: int, extra_meta: dict[str, Any] | None = None) -> web.Response:
    """A list response with pagination meta."""
    return ok(items, meta={**page_meta(page, total), **(extra_meta or {})})


MAX_JSON_DEPTH = 64  # no API body needs more; deeper ones would exhaust the parser's (and our) recursion
_JSON_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text (strings skipped), without parsing it."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return 0  # cannot be deeper than the number of openers: skip the scan for ordinary bodies
    depth = deepest = 0
    for match in _JSON_TOKENS.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_JSON_DEPTH:
                    return deepest
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


async def read_json(request: web.Request, *, limit: int | None = None) -> dict[str, Any]:
    """The body as a JSON object: 413 over the limit, 400 invalid_json, 400 invalid_body if not an object."""
    from appliance.keys import CONFIG

    max_bytes = limit or request.app[CONFIG].http.max_body_bytes
    if request.content_length is not None and request.content_length > max_bytes:
        raise too_large(max_bytes)
    # StreamReader.read(n) returns whatever has arrived so far, so read until EOF, counting as we go.
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(65536):
        size += len(chunk)
        if size > max_bytes:
            raise too_large(max_bytes)
        chunks.append(chunk)
    raw = b"".join(chunks)
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise bad_request("invalid_json", f"body is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request("invalid_json", f"body is not valid JSON: {exc}".split(": line")[0]) from None
    except RecursionError:
        raise bad_request("invalid_json", "body is nested too deeply") from None
    if not isinstance(value, dict):
        raise bad_request("invalid_body", "body must be a JSON object")
    return value
