"""AppKeys of the identity feature."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from appliance.auth.state import IdentityState

IDENTITY: web.AppKey[IdentityState] = web.AppKey("identity")
