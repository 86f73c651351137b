"""HTML pages of the video cache: the learner player and the admin video page."""

from __future__ import annotations

import html
from pathlib import Path

from aiohttp import web

from appliance.keys import MEDIA
from appliance.media.access import playable, video_id_of
from appliance.web.policy import Role, principal, roles, signed_in

WEB = Path(__file__).resolve().parent.parent / "web" / "media"
routes = web.RouteTableDef()
_TEMPLATES: dict[str, str] = {}


def _template(name: str) -> str:
    if name not in _TEMPLATES:
        _TEMPLATES[name] = (WEB / name).read_text(encoding="utf-8")  # small, read once per process
    return _TEMPLATES[name]


@routes.get(r"/videos/{id:\d+}")
@signed_in
async def player_page(request: web.Request) -> web.Response:
    """The learner's player: resumes at the saved position and reports progress."""
    svc = request.app[MEDIA]
    row = await playable(svc.repo, principal(request), video_id_of(request))
    poster = f"/videos/{row['id']}/thumbnail" if row["thumbnail_key"] else ""
    page = _template("player.html").format(
        id=row["id"], title=html.escape(row["title"] or "Video"), description=html.escape(row["description"] or ""),
        poster=poster,
    )
    return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-store"})


@routes.get("/admin/videos")
@roles(Role.FACILITY_ADMIN, Role.DEPARTMENT_ADMIN)
async def admin_page(request: web.Request) -> web.Response:
    """The admin video page with live download progress."""
    return web.Response(text=_template("admin.html"), content_type="text/html", headers={"Cache-Control": "no-store"})


def setup(app: web.Application) -> None:
    """Add the pages and the local static assets (no CDN)."""
    app.router.add_routes(routes)
    app.router.add_static("/static/media/", WEB / "static", name="media-static")
