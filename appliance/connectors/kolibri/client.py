"""Kolibri REST client: one signed-in session (cookies + CSRF header), checked before an empty list is trusted.

Kolibri has no API tokens: a facility admin signs in (`POST /api/auth/session/`) and the session cookie rides
on every call, with the CSRF token as `X-CSRFToken` on writes. An expired or anonymous session gets **200
with an empty list** (Kolibri filters what the caller may see instead of refusing), so an empty list, a 403
or a 404 makes the client ask `PUT /api/auth/session/current/` whether it is still signed in and, when it is
not, sign in again and repeat the call once.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Mapping, Sequence
from typing import IO, Any

import aiohttp
from yarl import URL

from appliance.connectors.errors import AuthFailed, NotFound, NotPermitted, Rejected, Throttled, Transient
from appliance.connectors.kolibri.mapping import HEX_ID, BadAnswer, error_text

SESSION_COOKIE = "kolibri"
CSRF_COOKIE = "kolibri_csrftoken"
MAX_JSON_BYTES = 4 * 1024 * 1024  # a page of 100 users is ~30 KB; anything this big is not a Kolibri answer
MAX_CSV_BYTES = 512 * 1024 * 1024  # spooled to disk past 8 MiB
CSV_IN_MEMORY = 8 * 1024 * 1024
ADMIN_KINDS = {"admin", "superuser"}
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
Params = Sequence[tuple[str, str]] | Mapping[str, str]


def classify(status: int, headers: Mapping[str, str], body: Any) -> Exception | None:
    """Map a Kolibri answer to a failure kind (None when it succeeded)."""
    if status < 400:
        return None
    if status == 429:
        try:
            wait = float(headers.get("Retry-After", "1"))
        except ValueError:
            wait = 1.0
        return Throttled(max(wait, 0.1))
    if status in (408, 425) or status >= 500:
        return Transient(f"Kolibri answered {status}")
    message = error_text(body, f"Kolibri refused the request with {status}")
    if status == 401:
        return AuthFailed(message)
    if status == 403:
        return NotPermitted(status, body, message)
    if status == 404:
        return NotFound(status, body, message)
    return Rejected(status, body, message)


def kinds_of(session: dict[str, Any]) -> list[str]:
    """The `kind` list of a session answer (learner, coach, admin, superuser, anonymous)."""
    kinds = session.get("kind")
    return [str(k) for k in kinds] if isinstance(kinds, list) else []


def is_empty_list(data: Any) -> bool:
    """An empty list, plain or paged: what an anonymous caller gets for any list."""
    return data == [] or (isinstance(data, dict) and data.get("results") == [] and not data.get("count"))


class KolibriClient:
    """One Kolibri server, one facility admin account, one session over the daemon's shared HTTP client."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        username: str,
        password: str,
        *,
        facility: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.session = session
        self.base = URL(base_url.rstrip("/"))
        self.username, self.password = username, password
        self.wanted_facility = facility or None
        self.facility_id: str | None = None  # known once signed in
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.cookies: dict[str, str] = {}
        self.requests = 0  # every HTTP request made (the benchmark prints it)
        self._sign_in_lock = asyncio.Lock()
        self._generation = 0  # bumped on every sign-in, so concurrent callers sign in once

    def url(self, path: str) -> URL:
        """Absolute URL of a server path (`/api/...`, `/facility/api/...`)."""
        return URL(f"{self.base}/{path.lstrip('/')}", encoded=True)

    def _headers(self, method: str) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if method in UNSAFE and CSRF_COOKIE in self.cookies:
            headers["X-CSRFToken"] = self.cookies[CSRF_COOKIE]
            headers["Referer"] = f"{self.base}/"  # Django checks it over HTTPS
        return headers

    def _keep_cookies(self, response: aiohttp.ClientResponse) -> None:
        for name in (SESSION_COOKIE, CSRF_COOKIE):
            morsel = response.cookies.get(name)
            if morsel is not None:
                if morsel.value:
                    self.cookies[name] = morsel.value
                else:
                    self.cookies.pop(name, None)

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: Any = None,
        timeout: float | None = None,
    ) -> tuple[int, Mapping[str, str], Any]:
        """One request, no session handling: (status, headers, parsed JSON body or text)."""
        limit = aiohttp.ClientTimeout(total=timeout) if timeout is not None else self.timeout
        self.requests += 1
        try:
            async with self.session.request(
                method, self.url(path), params=params, json=body, headers=self._headers(method), timeout=limit,
                allow_redirects=False,
            ) as response:
                self._keep_cookies(response)
                raw = await read_capped(response, MAX_JSON_BYTES, f"{method} {path}")
                status, headers = response.status, response.headers
                content_type = response.content_type
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise Transient(f"{type(exc).__name__}: {exc}".strip(": ")) from exc
        text = raw.decode("utf-8", errors="replace")
        try:
            data: Any = json.loads(text) if text else None
        except json.JSONDecodeError:
            if status < 400:
                raise BadAnswer(
                    f"Kolibri answered {method} {path} with {content_type or 'an unknown type'}, not JSON:"
                    f" {' '.join(text.split())[:120]!r}"
                ) from None
            data = text
        return status, headers, data

    # ---- the session -----------------------------------------------------------------------------
    async def sign_in(self, generation: int | None = None) -> None:
        """POST /api/auth/session/ with the facility; the account must administer it."""
        async with self._sign_in_lock:
            if generation is not None and generation != self._generation:
                return  # another caller signed in meanwhile
            body: dict[str, str] = {"username": self.username, "password": self.password}
            if self.wanted_facility:
                body["facility"] = self.wanted_facility
            self.cookies.pop(SESSION_COOKIE, None)
            status, headers, data = await self.send("POST", "/api/auth/session/", body=body)
            if status in (400, 401):
                raise AuthFailed(f"Kolibri refused the sign-in of {self.username}: {error_text(data, str(status))}")
            failure = classify(status, headers, data)
            if failure is not None:
                raise failure
            if not isinstance(data, dict) or not HEX_ID.match(str(data.get("facility_id") or "")):
                raise BadAnswer(f"Kolibri's sign-in answer has no valid facility_id: {str(data)[:120]!r}")
            kinds = kinds_of(data)
            if not ADMIN_KINDS & set(kinds):
                raise AuthFailed(f"the Kolibri account {self.username} is not an admin of its facility ({kinds})")
            if SESSION_COOKIE not in self.cookies:
                raise BadAnswer("Kolibri's sign-in answer set no session cookie")
            self.facility_id = data["facility_id"]
            self._generation += 1

    async def signed_in(self) -> bool:
        """Whether the session is still a signed-in user (this also keeps it alive)."""
        if SESSION_COOKIE not in self.cookies:
            return False
        status, headers, data = await self.send("PUT", "/api/auth/session/current/", body={})
        if status == 403:
            return False  # the CSRF token or the session went away
        failure = classify(status, headers, data)
        if failure is not None:
            raise failure
        if not isinstance(data, dict):
            raise BadAnswer(f"Kolibri's session answer is not an object: {str(data)[:120]!r}")
        return data.get("user_id") is not None and "anonymous" not in kinds_of(data)

    async def ensure_session(self) -> None:
        """Sign in unless the current session still holds."""
        generation = self._generation
        if self.facility_id is None or not await self.signed_in():
            await self.sign_in(generation)

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: Any = None,
        timeout: float | None = None,
    ) -> Any:
        """A call in the signed-in session; an empty list, 401, 403 or 404 is checked against the session first."""
        if self.facility_id is None:
            await self.sign_in(self._generation)
        for attempt in range(2):
            generation = self._generation
            status, headers, data = await self.send(method, path, params=params, body=body, timeout=timeout)
            suspicious = status in (401, 403, 404) or (method == "GET" and status == 200 and is_empty_list(data))
            if suspicious and attempt == 0 and not await self.signed_in():
                await self.sign_in(generation)
                continue
            failure = classify(status, headers, data)
            if failure is not None:
                raise failure
            return data
        raise AssertionError("unreachable")

    # ---- files -----------------------------------------------------------------------------------
    async def download(self, path: str, *, timeout: float | None = None) -> IO[bytes]:
        """A file (the CSV export) spooled to a temporary file, at most MAX_CSV_BYTES; the caller closes it."""
        for attempt in range(2):
            generation = self._generation
            limit = aiohttp.ClientTimeout(total=timeout) if timeout is not None else self.timeout
            self.requests += 1
            spool = tempfile.SpooledTemporaryFile(max_size=CSV_IN_MEMORY)  # noqa: SIM115 (the caller closes it)
            try:
                async with self.session.get(
                    self.url(path), headers=self._headers("GET"), timeout=limit, allow_redirects=False
                ) as response:
                    self._keep_cookies(response)
                    if response.status >= 400:
                        raw = await read_capped(response, MAX_JSON_BYTES, f"GET {path}")
                        try:
                            data: Any = json.loads(raw)
                        except ValueError:
                            data = raw.decode("utf-8", errors="replace")
                        spool.close()
                        if response.status in (403, 404) and attempt == 0 and not await self.signed_in():
                            await self.sign_in(generation)
                            continue
                        failure = classify(response.status, response.headers, data)
                        assert failure is not None
                        raise failure
                    size = 0
                    async for chunk in response.content.iter_chunked(65536):
                        size += len(chunk)
                        if size > MAX_CSV_BYTES:
                            raise BadAnswer(f"Kolibri's file {path} is larger than {MAX_CSV_BYTES >> 20} MiB")
                        spool.write(chunk)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                spool.close()
                raise Transient(f"{type(exc).__name__}: {exc}".strip(": ")) from exc
            except BaseException:
                spool.close()
                raise
            spool.seek(0)
            return spool
        raise AssertionError("unreachable")


async def read_capped(response: aiohttp.ClientResponse, cap: int, what: str) -> bytes:
    """The whole body, refusing (BadAnswer) past `cap` bytes without reading the rest."""
    declared = response.content_length
    if declared is not None and declared > cap:
        raise BadAnswer(f"Kolibri's answer to {what} is {declared} bytes, more than the {cap >> 20} MiB allowed")
    chunks, size = [], 0
    async for chunk in response.content.iter_chunked(65536):
        size += len(chunk)
        if size > cap:
            raise BadAnswer(f"Kolibri's answer to {what} is more than the {cap >> 20} MiB allowed")
        chunks.append(chunk)
    return b"".join(chunks)
