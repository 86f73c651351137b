"""Canvas REST client: Bearer auth, Link pagination followed verbatim, failures classified by kind."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from appliance.connectors.contract import follow_link
from appliance.connectors.errors import (
    AuthFailed,
    Malformed,
    NotFound,
    NotPermitted,
    Rejected,
    Throttled,
    Transient,
    UpstreamError,
)
from appliance.connectors.payload import PageGuard, parse_json, read_capped

LINK_RE = re.compile(r'<([^>]*)>\s*;\s*rel="?([^",;]+)"?')
THROTTLE_TEXT = "Rate Limit Exceeded"
DEFAULT_THROTTLE_WAIT = 1.0
Params = Sequence[tuple[str, str]] | Mapping[str, str]


@dataclass(frozen=True)
class Answer:
    """A successful answer: status, parsed JSON body and the headers that matter."""

    status: int
    data: Any
    links: dict[str, str]
    remaining: float | None


def parse_links(header: str) -> dict[str, str]:
    """Link header → {rel: url}; header names and rel values are case-insensitive."""
    return {rel.strip().lower(): url for url, rel in LINK_RE.findall(header or "")}


def error_message(body: Any, default: str) -> str:
    """The first `errors[].message` of a Canvas error body, if any."""
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("message") or default)
    return default


def classify(status: int, headers: Mapping[str, str], body: Any) -> UpstreamError | None:
    """Map a Canvas answer to a failure kind (None when it succeeded)."""
    if status < 400:
        return None
    text = body if isinstance(body, str) else json.dumps(body)
    if status == 429 or (status == 403 and THROTTLE_TEXT in text):
        try:
            wait = float(headers.get("Retry-After", DEFAULT_THROTTLE_WAIT))
        except ValueError:
            wait = DEFAULT_THROTTLE_WAIT
        return Throttled(max(wait, 0.1))
    if status == 401 and "WWW-Authenticate" in headers:
        return AuthFailed(error_message(body, "invalid access token"))
    if status in (401, 403):
        return NotPermitted(status, body, error_message(body, "not permitted"))
    if status == 404:
        return NotFound(status, body, error_message(body, "not found"))
    if status in (408, 425) or status >= 500:
        return Transient(f"upstream answered {status}")
    return Rejected(status, body, error_message(body, f"upstream rejected the request with {status}"))


class CanvasClient:
    """One Canvas instance and account, reached with a Bearer token over a shared session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        token: str,
        *,
        account_id: str,
        timeout: float = 30.0,
        per_page: int = 100,
    ) -> None:
        self.session = session
        self.base = URL(base_url.rstrip("/"))
        self.token = token
        self.account_id = account_id
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.per_page = per_page
        self.remaining: float | None = None  # last X-Rate-Limit-Remaining seen

    def url(self, path: str) -> URL:
        """Absolute API URL of `path` (relative to /api/v1/)."""
        return URL(f"{self.base}/api/v1/{path.lstrip('/')}", encoded=True)

    async def call(
        self,
        method: str,
        target: str | URL,
        *,
        params: Params | None = None,
        body: dict[str, Any] | None = None,
        timeout: float | None = None,
        raw_body: tuple[bytes, str] | None = None,
    ) -> Answer:
        """One request; raises a classified UpstreamError for anything but success."""
        url = target if isinstance(target, URL) else self.url(target)
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        limit = aiohttp.ClientTimeout(total=timeout) if timeout is not None else self.timeout
        data_arg: bytes | None = None
        if raw_body is not None:
            data_arg, headers["Content-Type"] = raw_body
        try:
            async with self.session.request(
                method, url, params=params, json=body, data=data_arg, headers=headers, timeout=limit,
                allow_redirects=False,
            ) as response:
                raw = await read_capped(response)
                status, resp_headers = response.status, response.headers
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise Transient(f"{type(exc).__name__}: {exc}".strip(": ")) from exc
        data: Any
        try:
            data = parse_json(raw, status, resp_headers.get("Content-Type", ""))
        except Malformed:
            if status < 400:
                raise  # a success that is not JSON: a captive portal or proxy page, never Canvas
            data = raw.decode("utf-8", "replace")  # error bodies may be text (the throttle answer is)
        remaining = resp_headers.get("X-Rate-Limit-Remaining")
        if remaining is not None:
            with contextlib.suppress(ValueError):
                self.remaining = float(remaining)
        failure = classify(status, resp_headers, data)
        if failure is not None:
            raise failure
        return Answer(status, data, parse_links(resp_headers.get("Link", "")), self.remaining)

    async def get(self, path: str, params: Params | None = None) -> Any:
        """GET one object."""
        return (await self.call("GET", path, params=params)).data

    async def pages(self, path: str, params: Sequence[tuple[str, str]] = ()) -> AsyncIterator[list[Any]]:
        """Every page of a list, following rel=next verbatim (bookmarks included) until it is absent.

        A next link on another origin stops the listing with ForeignLink (it would receive the token).
        """
        guard = PageGuard(f"Canvas {path}")
        answer = await self.call("GET", path, params=[*params, ("per_page", str(self.per_page))])
        while True:
            if not isinstance(answer.data, list):
                raise Malformed(f"Canvas {path}: expected a list, got {type(answer.data).__name__}")
            yield answer.data
            next_url = answer.links.get("next")
            if not next_url:
                return
            guard.visit(next_url)  # a next link seen before would page forever
            answer = await self.call("GET", follow_link(self.base, next_url))

    async def all(self, path: str, params: Sequence[tuple[str, str]] = ()) -> list[Any]:
        """Every item of a list, across all pages."""
        return [item async for page in self.pages(path, params) for item in page]

    # ---- probes ----------------------------------------------------------------------------------
    async def probe(self, timeout: float = 5.0) -> None:
        """Cheap reachability and credentials check: GET the account."""
        await self.call("GET", f"accounts/{quote(self.account_id)}", timeout=timeout)

    # ---- users -----------------------------------------------------------------------------------
    async def user_by_sis(self, sis_user_id: str) -> dict[str, Any] | None:
        """The user holding this SIS id, or None."""
        try:
            return await self.get(f"users/sis_user_id:{quote(sis_user_id, safe='')}")
        except NotFound:
            return None

    async def create_user(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST accounts/:id/users."""
        answer = await self.call("POST", f"accounts/{quote(self.account_id)}/users", body=body)
        return answer.data

    async def update_user(self, user_id: int | str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT users/:id."""
        return (await self.call("PUT", f"users/{user_id}", body=body)).data

    # ---- enrollments -----------------------------------------------------------------------------
    async def enrollments_of(self, course_id: str, sis_user_id: str) -> list[dict[str, Any]]:
        """Live student enrollments of one user (by SIS id) in one course."""
        params = [
            ("user_id", f"sis_user_id:{sis_user_id}"),
            ("type[]", "StudentEnrollment"),
            ("state[]", "active"),
            ("state[]", "invited"),
            ("state[]", "inactive"),
        ]
        return await self.all(f"courses/{quote(course_id)}/enrollments", params)

    async def enroll(self, course_id: str, sis_user_id: str) -> dict[str, Any]:
        """POST courses/:id/enrollments for a student, addressed by SIS id."""
        body = {
            "enrollment": {
                "user_id": f"sis_user_id:{sis_user_id}",
                "type": "StudentEnrollment",
                "enrollment_state": "active",
                "notify": False,
            }
        }
        return (await self.call("POST", f"courses/{quote(course_id)}/enrollments", body=body)).data

    async def sis_import(self, csv_text: str) -> dict[str, Any]:
        """POST accounts/:id/sis_imports with a CSV body (never batch_mode: that deletes absent users)."""
        params = {"import_type": "instructure_csv", "extension": "csv"}
        answer = await self.call("POST", f"accounts/{quote(self.account_id)}/sis_imports", params=params,
                                 raw_body=(csv_text.encode(), "text/csv"))
        return answer.data

    async def sis_import_status(self, import_id: int | str) -> dict[str, Any]:
        """GET accounts/:id/sis_imports/:id."""
        return await self.get(f"accounts/{quote(self.account_id)}/sis_imports/{import_id}")

    async def end_enrollment(self, course_id: str, enrollment_id: int | str, task: str = "conclude") -> None:
        """DELETE courses/:id/enrollments/:id?task=…"""
        await self.call("DELETE", f"courses/{quote(course_id)}/enrollments/{enrollment_id}", params={"task": task})


async def with_retries(fn: Any, *, attempts: int = 5, sleep: Any = asyncio.sleep, base: float = 0.5) -> Any:
    """Run `fn()` again after Throttled/Transient, backing off; other failures propagate at once."""
    for attempt in range(attempts):
        try:
            return await fn()
        except Throttled as exc:
            if attempt == attempts - 1:
                raise
            await sleep(max(exc.retry_after, base * 2**attempt))
        except Transient:
            if attempt == attempts - 1:
                raise
            await sleep(base * 2**attempt)
    raise AssertionError("unreachable")
