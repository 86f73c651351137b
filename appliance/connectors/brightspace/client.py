"""Brightspace Valence REST client: ID-key or OAuth auth, version discovery, both paging styles, limits.

Every answer is read with a size cap, parsed as JSON only when it says JSON, and classified into the
engine's failure kinds; paging refuses loops and `Next` links that leave the provider's own origin.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiohttp
from yarl import URL

from appliance.connectors.brightspace import mapping
from appliance.connectors.brightspace.limits import read_capped
from appliance.connectors.brightspace.mapping import BadAnswer
from appliance.connectors.brightspace.oauth import IdKeyAuth, OAuthAuth
from appliance.connectors.contract import follow_link
from appliance.connectors.errors import (
    AuthFailed,
    NotFound,
    NotPermitted,
    Rejected,
    Throttled,
    Transient,
    UpstreamError,
)

MAX_PAGES = 100_000
WANTED_VERSIONS = {"lp": 1, "le": 1}
DEFAULT_THROTTLE_WAIT = 5.0
Params = Sequence[tuple[str, str]] | Mapping[str, str]
Auth = IdKeyAuth | OAuthAuth


def classify(status: int, headers: Mapping[str, str], body: Any) -> UpstreamError | None:
    """Map a Brightspace answer to a failure kind (None when it succeeded)."""
    if status < 400:
        return None
    text = body if isinstance(body, str) else json.dumps(body)[:500]
    if status == 429:
        try:
            wait = float(headers.get("Retry-After", DEFAULT_THROTTLE_WAIT))
        except ValueError:
            wait = DEFAULT_THROTTLE_WAIT
        return Throttled(max(wait, 0.1))
    if status == 401:
        return AuthFailed("Brightspace refused the access token (401)")
    if status == 403:
        lowered = text.strip().lower()
        if lowered.startswith("invalid token"):
            return AuthFailed("Brightspace refused the ID-key signature (Invalid token): check app and user keys")
        if lowered.startswith("timestamp out of range"):
            return AuthFailed("Brightspace kept refusing the request timestamp (clock skew)")
        return NotPermitted(status, body, "Brightspace: not permitted (403)")
    if status == 404:
        return NotFound(status, body, "Brightspace: not found (404)")
    if status in (408, 425) or status >= 500:
        return Transient(f"Brightspace answered {status}")
    return Rejected(status, body, f"Brightspace rejected the request with {status}: {text[:200]}")


class BrightspaceClient:
    """One Brightspace instance reached with one set of credentials over the daemon's shared session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        auth: Auth,
        *,
        root_org_unit: str | None = None,
        timeout: float = 30.0,
        page_size: int = 100,
    ) -> None:
        self.session = session
        self.base = URL(base_url.rstrip("/"))
        self.auth = auth
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.page_size = page_size
        self.root_org_unit = root_org_unit
        self.versions: dict[str, str] = {}
        self.learner_role: str | None = None
        self.remaining: float | None = None
        self.requests = 0

    # ---- transport ---------------------------------------------------------------------------------
    def url(self, path: str) -> URL:
        """Absolute URL of an API path (`/d2l/api/...`)."""
        return self.base.join(URL(path, encoded=True)) if path.startswith("/") else URL(path, encoded=True)

    async def call(
        self, method: str, target: str | URL, *, params: Params | None = None, body: Any = None,
        timeout: float | None = None,
    ) -> Any:
        """One request, retried once when the auth layer can fix its failure (skew, expired token)."""
        # A URL target is a link the upstream named: only on the provider's own origin (the credentials go along).
        url = follow_link(self.base, str(target)) if isinstance(target, URL) else self.url(target)
        query = list(params.items()) if isinstance(params, Mapping) else list(params or [])
        for attempt in (0, 1):
            headers = {"Accept": "application/json"}
            signed = await self.auth.prepare(method, url.path, headers)
            full = url.update_query([*url.query.items(), *query, *signed.items()]) if (query or signed) else url
            status, resp_headers, data, raw_text = await self._send(method, full, headers, body, timeout)
            if status >= 400 and attempt == 0 and self.auth.retry_after_failure(status, raw_text):
                continue
            failure = classify(status, resp_headers, data)
            if failure is not None:
                raise failure
            return data
        raise AssertionError("unreachable")

    async def _send(
        self, method: str, url: URL, headers: dict[str, str], body: Any, timeout: float | None
    ) -> tuple[int, Mapping[str, str], Any, str]:
        limit = aiohttp.ClientTimeout(total=timeout) if timeout is not None else self.timeout
        self.requests += 1
        try:
            async with self.session.request(
                method, url, json=body, headers=headers, timeout=limit, allow_redirects=False
            ) as response:
                raw = await read_capped(response)
                status, resp_headers = response.status, response.headers
                ctype = response.content_type
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise Transient(f"{type(exc).__name__}: {exc}".strip(": ")) from exc
        remaining = resp_headers.get("X-Rate-Limit-Remaining")
        if remaining is not None:
            with contextlib.suppress(ValueError):
                self.remaining = float(remaining)
        text = raw.decode("utf-8", errors="replace")
        data: Any = text
        if ctype == "application/json" or (ctype != "text/html" and text[:1] in ("{", "[")):
            try:
                data = json.loads(text) if text else None
            except json.JSONDecodeError:
                if status < 400:
                    raise BadAnswer(f"{method} {url.path}: body is not valid JSON", status, text[:500]) from None
        elif status < 400 and (text or method == "GET"):
            raise BadAnswer(f"{method} {url.path}: expected JSON, got {ctype or 'no content type'}", status,
                            text[:500])
        return status, resp_headers, data, text

    # ---- discovery -----------------------------------------------------------------------------------
    async def discover(self, timeout: float | None = None) -> None:
        """API versions (GET /d2l/api/versions/) and the root org unit, once."""
        if not self.versions:
            data = await self.call("GET", "/d2l/api/versions/", timeout=timeout)
            self.versions = mapping.pick_versions(data, WANTED_VERSIONS)
        if self.root_org_unit is None:
            info = mapping.obj(await self.call("GET", self.lp("organization/info"), timeout=timeout), "organization")
            self.root_org_unit = mapping.ident(info.get("Identifier"), "organization.Identifier")

    def lp(self, rest: str) -> str:
        """A Learning Platform route at the discovered version."""
        return f"/d2l/api/lp/{self.versions['lp']}/{rest}"

    def le(self, rest: str) -> str:
        """A Learning Environment route at the discovered version."""
        return f"/d2l/api/le/{self.versions['le']}/{rest}"

    async def probe(self, timeout: float) -> None:
        """Versions plus whoami: reachability and credentials in two cheap calls."""
        await self.discover(timeout=timeout)
        await self.call("GET", self.lp("users/whoami"), timeout=timeout)

    async def learner_role_id(self) -> str:
        """The Learner role's id, looked up once."""
        if self.learner_role is None:
            await self.discover()
            self.learner_role = mapping.learner_role(await self.call("GET", self.lp("roles/")))
        return self.learner_role

    # ---- paging --------------------------------------------------------------------------------------
    async def paged(self, path: str, params: Sequence[tuple[str, str]] = (), what: str = "page") -> AsyncIterator[
        list[Any]
    ]:
        """Every page of a PagedResultSet, by bookmark, refusing a bookmark seen before (a paging loop)."""
        seen: set[str] = set()
        bookmark: str | None = None
        for _ in range(MAX_PAGES):
            query = [*params, ("bookmark", bookmark)] if bookmark else list(params)
            items, bookmark = mapping.paged_result_set(await self.call("GET", path, params=query), what)
            yield items
            if bookmark is None:
                return
            if bookmark in seen:
                raise BadAnswer(f"{what}: bookmark {bookmark[:40]!r} came back again (a paging loop)")
            seen.add(bookmark)
        raise BadAnswer(f"{what}: more than {MAX_PAGES} pages")

    async def listed(self, path: str, params: Sequence[tuple[str, str]] = (), what: str = "page") -> AsyncIterator[
        list[Any]
    ]:
        """Every page of an ObjectListPage, following `Next` only within the provider's own origin."""
        seen: set[str] = set()
        objects, nxt = mapping.object_list_page(await self.call("GET", path, params=params), what)
        for _ in range(MAX_PAGES):
            yield objects
            if nxt is None:
                return
            if nxt in seen:
                raise BadAnswer(f"{what}: Next link came back again (a paging loop)")
            seen.add(nxt)
            objects, nxt = mapping.object_list_page(await self.call("GET", follow_link(self.base, nxt)), what)
        raise BadAnswer(f"{what}: more than {MAX_PAGES} pages")
