"""AppKeys of the video cache feature."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from appliance.media.service import MediaService

# The video cache service of this process.
MEDIA: web.AppKey[MediaService] = web.AppKey("media")
