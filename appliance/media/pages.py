"""HTML pages of the video cache: the learner player and the admin video page."""

from __future__ import annotations

import html
from pathlib import Path

from aiohttp import web

from appliance.media.access import is_admin, playable, video_id_of
from appliance.media.keys import MEDIA
from appliance.media.models import Availability
from appliance.web.policy import Role, principal, roles, signed_in
from appliance.web.responses import page_meta, page_params
from appliance.web.shell.pages import SECURITY_HEADERS
from appliance.web.shell.pages import page as shell_page

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
    # the shell's headers (CSP self-only, no framing, nosniff, no-store), as on every other page
    return web.Response(text=page, content_type="text/html", headers=SECURITY_HEADERS)


@routes.get("/videos")
@signed_in
async def list_page(request: web.Request) -> web.Response:
    """The learner's list of videos available in their facilities (all available ones for admins)."""
    svc = request.app[MEDIA]
    p = principal(request)
    page = page_params(request, default_per_page=24, max_per_page=96)
    visible_to = None if is_admin(p) else sorted(p.facility_ids | {p.facility_id})
    rows, total = await svc.repo.list(availability=Availability.AVAILABLE, facility_id=None, visible_to=visible_to,
                                      limit=page.limit, offset=page.offset)
    items = []
    for row in rows:
        thumb = (f'<img src="/videos/{row["id"]}/thumbnail" alt="" loading="lazy">' if row["thumbnail_key"] else "")
        minutes = f' <span class="len">{int(row["duration_s"] or 0) // 60} min</span>' if row["duration_s"] else ""
        items.append(f'<li><a href="/videos/{row["id"]}">{thumb}<span>{html.escape(row["title"] or "Video")}'
                     f"</span></a>{minutes}</li>")
    meta = page_meta(page, total)
    pager = ""
    if meta["has_prev"]:
        pager += f'<a href="/videos?page={page.page - 1}">Previous</a> '
    if meta["has_next"]:
        pager += f'<a href="/videos?page={page.page + 1}">Next</a>'
    body = ("<h1>Videos</h1>" + (f'<ul class="videos">{"".join(items)}</ul>' if items
                                  else "<p>No videos are available yet.</p>") + f'<nav class="pager">{pager}</nav>')
    return shell_page("Videos", body, p)


@routes.get("/admin/videos")
@roles(Role.FACILITY_ADMIN, Role.DEPARTMENT_ADMIN)
async def admin_page(request: web.Request) -> web.Response:
    """The admin video page with live download progress."""
    # the shell's headers: its CSP (self only) keeps the page offline even if a CDN link slipped in
    return web.Response(text=_template("admin.html"), content_type="text/html", headers=SECURITY_HEADERS)


def setup(app: web.Application) -> None:
    """Add the pages and the local static assets (no CDN)."""
    app.router.add_routes(routes)
    app.router.add_static("/static/media/", WEB / "static", name="media-static")
