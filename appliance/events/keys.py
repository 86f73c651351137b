"""AppKeys of the events feature."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from appliance.core.vault import Vault
    from appliance.events.dispatcher import Dispatcher

# The core vault bound to the webhook-secret purpose.
SECRETS: web.AppKey[Vault] = web.AppKey("webhook_secrets")
# The primary's delivery loop (None in HTTP workers and when events are disabled).
DISPATCHER: web.AppKey[Dispatcher | None] = web.AppKey("webhook_dispatcher")
