"""AppKeys of the sync feature."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from appliance.sync.engine import SyncEngine
    from appliance.sync.secrets import Vault

VAULT: web.AppKey[Vault] = web.AppKey("sync_vault")
ENGINE: web.AppKey[SyncEngine | None] = web.AppKey("sync_engine")
