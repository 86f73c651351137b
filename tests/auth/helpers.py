"""A signed-in 'browser' for the identity tests: its own cookie jar, CSRF header sent automatically."""

from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient


class Browser:
    """One person's browser against the test app."""

    def __init__(self, client: TestClient, *, secure_origin: bool = False) -> None:
        self.client = client
        self.base = str(client.make_url("")).rstrip("/")
        # secure_origin: send Secure cookies over this plain-HTTP test server, as if TLS ended at a proxy.
        jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=[self.base] if secure_origin else None)
        self.http = aiohttp.ClientSession(cookie_jar=jar)
        self.csrf = ""

    async def close(self) -> None:
        """Close the session."""
        await self.http.close()

    async def login(self, username: str, password: str, *, expect: int = 200) -> dict[str, Any]:
        """POST the login; on success remember the CSRF token."""
        body = await self.call(
            "POST", "/api/v1/auth/login", json={"username": username, "password": password}, expect=expect
        )
        if expect == 200:
            self.csrf = body["data"]["csrf_token"]
        return body

    async def call(
        self, method: str, path: str, *, expect: int | None = 200, csrf: bool = True, **kwargs: Any
    ) -> dict[str, Any]:
        """Send a request; check the status when expect is given; return the JSON body."""
        headers = dict(kwargs.pop("headers", {}))
        if csrf and self.csrf and method not in ("GET", "HEAD"):
            headers.setdefault("X-CSRF-Token", self.csrf)
        async with self.http.request(method, self.base + path, headers=headers, **kwargs) as resp:
            text = await resp.text()
            if expect is not None:
                assert resp.status == expect, f"{method} {path}: {resp.status} {text[:500]}"
            self.last_status = resp.status
            self.last_headers = resp.headers
            return await resp.json(content_type=None) if text else {}

    def session_cookie(self) -> str:
        """The current session cookie value ('' if none)."""
        for cookie in self.http.cookie_jar:
            if cookie.key == "appliance_session":
                return cookie.value
        return ""
