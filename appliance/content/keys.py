"""AppKeys of the library feature."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from appliance.content.service import ContentService

CONTENT: web.AppKey[ContentService] = web.AppKey("content")
