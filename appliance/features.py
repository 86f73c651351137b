"""The ordered list of features; each one's setup(app) adds routes, contexts and middlewares."""

from collections.abc import Callable

from aiohttp import web

from appliance.auth import feature as auth
from appliance.content import feature as content
from appliance.media import feature as media
from appliance.sync import feature as sync

FEATURES: list[tuple[str, Callable[[web.Application], None]]] = [
    ("auth", auth.setup),
    ("content", content.setup),
    ("media", media.setup),
    ("sync", sync.setup),
]
