"""Brightspace's two ways to authenticate a call: Valence ID-key signatures and OAuth 2.0 bearer tokens.

OAuth refresh tokens are one-time use at Brightspace: each refresh answers a new refresh token and the
old one dies. So a rotated token is stored (through `Upstream.save_credentials`, one transaction on the
provider row) before its access token is used for anything; a process killed before the store has
never used the new pair, and one killed after it restarts from the stored pair. The refresh runs as a
shielded single flight: concurrent callers share it and a cancelled caller (a probe's timeout) cannot cut
it between the answer and the store.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp

from appliance.connectors.brightspace import signing
from appliance.connectors.brightspace.limits import read_capped
from appliance.connectors.brightspace.mapping import BadAnswer
from appliance.connectors.errors import AuthFailed, Transient

log = logging.getLogger(__name__)
DEFAULT_TOKEN_URL = "https://auth.brightspace.com/core/connect/token"  # noqa: S105 (a URL)
TOKEN_ANSWER_MAX = 64 * 1024
EARLY_REFRESH_S = 60  # refresh a little before expiry rather than after a 401
Saver = Callable[[dict[str, str]], Awaitable[None]]


class IdKeyAuth:
    """Signs each call with the app and user keys; learns the server's clock skew from its 403."""

    def __init__(self, creds: Mapping[str, str], clock: Callable[[], float] = time.time) -> None:
        self.app_id, self.app_key = creds["app_id"], creds["app_key"]
        self.user_id, self.user_key = creds["user_id"], creds["user_key"]
        self.clock = clock
        self.skew = 0

    async def prepare(self, method: str, path: str, headers: dict[str, str]) -> dict[str, str]:
        """The x_* query parameters for this call (its path only is signed)."""
        stamp = int(self.clock()) + self.skew
        return signing.signed_params(
            method, path, stamp, app_id=self.app_id, app_key=self.app_key, user_id=self.user_id,
            user_key=self.user_key,
        )

    def retry_after_failure(self, status: int, body: str) -> bool:
        """403 `Timestamp out of range <ts>`: adopt the server's clock and sign again (once)."""
        if status != 403:
            return False
        server = signing.server_time(body)
        if server is None:
            return False
        self.skew = server - int(self.clock())
        log.info("brightspace: clock skew %+d s learned from the server", self.skew)
        return True


class OAuthAuth:
    """Bearer tokens from a rotating refresh token, stored before use."""

    def __init__(
        self,
        creds: Mapping[str, str],
        session: aiohttp.ClientSession,
        save: Saver | None,
        *,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.creds = dict(creds)
        self.session, self.save, self.clock = session, save, clock
        self.token_url = creds.get("token_url") or DEFAULT_TOKEN_URL
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.access = creds.get("access_token") or ""
        try:
            self.expires_at = float(creds.get("access_expires_at") or 0)
        except ValueError:
            self.expires_at = 0.0
        self._flight: asyncio.Task[None] | None = None
        self._unsaved: dict[str, str] | None = None
        self.refreshes = 0

    async def prepare(self, method: str, path: str, headers: dict[str, str]) -> dict[str, str]:
        """Authorization header with a live access token (refreshing first when it is about to expire)."""
        if self._unsaved is not None:
            await self._store(self._unsaved)
        if not self.access or self.clock() >= self.expires_at - EARLY_REFRESH_S:
            await self.refresh()
        headers["Authorization"] = f"Bearer {self.access}"
        return {}

    def retry_after_failure(self, status: int, body: str) -> bool:
        """A 401 means the access token died early (revoked, server restart): refresh once and retry."""
        if status != 401:
            return False
        self.access, self.expires_at = "", 0.0
        return True

    async def refresh(self) -> None:
        """Trade the refresh token for a new pair, once, however many callers ask at the same time."""
        if self._flight is None or self._flight.done():
            self._flight = asyncio.get_running_loop().create_task(self._refresh())
        flight = self._flight
        await asyncio.shield(flight)

    async def _refresh(self) -> None:
        # Client credentials in the form body (RFC 6749 §2.3.1), which Brightspace's token endpoint accepts.
        form = {
            "grant_type": "refresh_token",
            "refresh_token": self.creds.get("refresh_token", ""),
            "client_id": self.creds.get("client_id", ""),
            "client_secret": self.creds.get("client_secret", ""),
        }
        try:
            async with self.session.post(
                self.token_url, data=form, timeout=self.timeout, allow_redirects=False,
                headers={"Accept": "application/json"},
            ) as response:
                raw = await read_capped(response, TOKEN_ANSWER_MAX)
                status = response.status
        except BadAnswer as exc:
            raise AuthFailed(f"token endpoint: {exc}") from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise Transient(f"token endpoint: {type(exc).__name__}: {exc}".rstrip(": ")) from exc
        answer = _json(raw)
        if status in (400, 401):
            error = answer.get("error") if isinstance(answer, dict) else None
            raise AuthFailed(
                f"Brightspace refused the refresh token ({error or status}); authorize the app again and "
                "store the new refresh token in the provider's credentials"
            )
        if status >= 300 or not isinstance(answer, dict) or not isinstance(answer.get("access_token"), str):
            if status >= 500 or status in (408, 429):
                raise Transient(f"token endpoint answered {status}")
            raise AuthFailed(f"token endpoint answered {status} without an access token")
        lifetime = answer.get("expires_in")
        lifetime = float(lifetime) if isinstance(lifetime, int | float) and not isinstance(lifetime, bool) else 3600.0
        rotated = answer.get("refresh_token")
        new = {
            **self.creds,
            "refresh_token": rotated if isinstance(rotated, str) and rotated else self.creds.get("refresh_token", ""),
            "access_token": answer["access_token"],
            "access_expires_at": str(int(self.clock() + lifetime)),
        }
        self.refreshes += 1
        # Store first: the new pair is used only once it is safe on disk.
        await self._store(new)

    async def _store(self, new: dict[str, str]) -> None:
        self.creds = new
        self.access, self.expires_at = new["access_token"], float(new["access_expires_at"])
        if self.save is None:
            self._unsaved = None
            return
        try:
            await self.save(new)
        except asyncio.CancelledError:
            self._unsaved = new
            raise
        except Exception as exc:  # the store is down: keep the pair in memory, store it on the next call
            self._unsaved = new
            log.warning("brightspace: could not store the rotated refresh token yet: %s", exc)
            raise Transient(f"could not store the rotated refresh token: {exc}") from exc
        self._unsaved = None


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
