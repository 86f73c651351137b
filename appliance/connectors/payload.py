"""Defensive reading of upstream answers shared by connectors: capped bodies, typed fields, paging guards.

An upstream on a facility's uplink may be a captive portal, a proxy error page or a broken plugin: every
answer is read with a size cap, and every field a mapping relies on is checked, so that bad input fails the
run with a message naming the problem instead of a KeyError deep in the engine.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from appliance.connectors.errors import Malformed

MAX_BODY_BYTES = 4 * 1024 * 1024  # far above any page the connectors ask for (100 records)
MAX_PAGES = 100_000  # a list longer than this is a loop, not a roster


async def read_capped(response: aiohttp.ClientResponse, limit: int = MAX_BODY_BYTES) -> bytes:
    """The whole body, refusing (without reading it all) anything over `limit` bytes."""
    declared = response.content_length
    if declared is not None and declared > limit:
        raise Malformed(f"answer of {declared} bytes is over the {limit} byte limit", response.status)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise Malformed(f"answer is over the {limit} byte limit", response.status)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes, status: int, content_type: str) -> Any:
    """JSON body, or Malformed naming what came instead (an HTML error page, usually)."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        kind = "an HTML page" if raw.lstrip()[:1] == b"<" else (content_type or "something")
        snippet = raw[:200].decode("utf-8", "replace")
        raise Malformed(f"answered {kind} instead of JSON (HTTP {status})", status, snippet) from None


def text_id(obj: Any, key: str, what: str) -> str:
    """A required id as text: a number or a non-empty string (ids arrive both ways); else Malformed."""
    if not isinstance(obj, dict):
        raise Malformed(f"{what} is not an object: {str(obj)[:80]}")
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int | str) or str(value).strip() == "":
        raise Malformed(f"{what} has no usable {key}: {str(value)[:80]}")
    return str(value).strip()


def opt_text(value: Any) -> str | None:
    """An optional text field: strings and numbers become text, anything else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | str):
        return str(value).strip() or None
    return None


def opt_float(value: Any) -> float | None:
    """A number that may arrive as a string ("12.5"); None when absent or not a number."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def opt_int(value: Any) -> int | None:
    """An integer that may arrive as a string ("12"); None when absent or not a number."""
    number = opt_float(value)
    return None if number is None or number != number else int(number)


def as_list(data: Any, what: str) -> list[Any]:
    """A JSON array where one is promised; Malformed otherwise."""
    if not isinstance(data, list):
        raise Malformed(f"{what}: expected a list, got {type(data).__name__}")
    return data


class PageGuard:
    """Detects a list that never ends: a next link seen before, or more pages than any roster has."""

    def __init__(self, what: str, max_pages: int = MAX_PAGES) -> None:
        self.what, self.max_pages = what, max_pages
        self.seen: set[str] = set()

    def visit(self, marker: str) -> None:
        """Note one page (its URL or offset); raise Malformed on a repeat or past the ceiling."""
        if marker in self.seen:
            raise Malformed(f"{self.what}: paging loops (page {marker[:120]} came back)")
        self.seen.add(marker)
        if len(self.seen) > self.max_pages:
            raise Malformed(f"{self.what}: more than {self.max_pages} pages")
