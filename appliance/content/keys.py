"""AppKeys of the library feature."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from appliance.content.service import ContentService
    from appliance.web.sites import ExtraSite

CONTENT: web.AppKey[ContentService] = web.AppKey("content")
# On the main app: the content origin's listener (its app and, once bound, its port).
CONTENT_SITE: web.AppKey[ExtraSite] = web.AppKey("content_site")
# On the content origin's app: the main app whose state (session lookups, tasks) it shares.
MAIN_APP = web.AppKey("main_app", web.Application)
