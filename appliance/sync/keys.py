"""AppKeys of the sync feature."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from appliance.keys import VAULT as CORE_VAULT

if TYPE_CHECKING:
    from appliance.sync.engine import SyncEngine

# The vault is the core's (webhook secrets share the key); the name stays for the sync modules' imports.
VAULT = CORE_VAULT
ENGINE: web.AppKey[SyncEngine | None] = web.AppKey("sync_engine")
