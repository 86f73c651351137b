"""Video pages rendered from templates: the learner list and player, the learner home's "continue
watching", the watching series of the dashboard chart, and the staff video page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp import web

from appliance.keys import DB
from appliance.media.access import is_admin, playable, video_id_of
from appliance.media.keys import MEDIA
from appliance.media.models import Availability
from appliance.web import templating
from appliance.web.i18n import N_
from appliance.web.openapi import ID, obj, spec
from appliance.web.policy import Principal, Role, principal, roles, signed_in
from appliance.web.responses import ok, page_meta, page_params
from appliance.web.shell.pages import ACTIVITY, ActivitySource

WEB = Path(__file__).resolve().parent.parent / "web" / "media"
TEMPLATES = Path(__file__).resolve().parent / "templates"
WATCHED_FRACTION = 0.9  # a video watched to 90 % counts as watched (credits are often skipped)
routes = web.RouteTableDef()


def _facilities(p: Principal) -> list[int] | None:
    return None if is_admin(p) else sorted(p.facility_ids | {p.facility_id})


async def _positions(request: web.Request, p: Principal, ids: list[int]) -> dict[int, Any]:
    if not ids:
        return {}
    rows = await request.app[DB].fetchall(
        "SELECT video_id, position_s, completed FROM video_positions WHERE user_id = ? "
        "AND video_id IN (SELECT value FROM json_each(?))", (p.user_id, json.dumps(ids)))
    return {r["video_id"]: r for r in rows}


def _watched(row: Any, pos: Any) -> bool:
    if pos is None:
        return False
    length = row["duration_s"]
    return bool(pos["completed"]) or bool(length and pos["position_s"] >= WATCHED_FRACTION * length)


async def set_favorite(request: web.Request, p: Principal, video_id: int, favorite: bool) -> None:
    """Add a video the caller may play to their favourites, or remove it (the API and the pages share it)."""
    await playable(request.app[MEDIA].repo, p, video_id)
    db = request.app[DB]
    if favorite:
        await db.execute("INSERT OR IGNORE INTO video_favorites (user_id, video_id) VALUES (?, ?)",
                         (p.user_id, video_id))
    else:
        await db.execute("DELETE FROM video_favorites WHERE user_id = ? AND video_id = ?", (p.user_id, video_id))


async def _favorites(request: web.Request, p: Principal) -> set[int]:
    rows = await request.app[DB].fetchall("SELECT video_id FROM video_favorites WHERE user_id = ?", (p.user_id,))
    return {r["video_id"] for r in rows}


@routes.put(r"/api/v1/videos/{id:\d+}/favorite")
@signed_in
@spec(body=obj(), response=obj("id", "favorite", id=ID, favorite={"const": True}))
async def put_favorite(request: web.Request) -> web.Response:
    """Add a video to the caller's favourites."""
    await set_favorite(request, principal(request), video_id_of(request), True)
    return ok({"id": video_id_of(request), "favorite": True})


@routes.delete(r"/api/v1/videos/{id:\d+}/favorite")
@signed_in
@spec(response=obj("id", "favorite", id=ID, favorite={"const": False}))
async def delete_favorite(request: web.Request) -> web.Response:
    """Remove a video from the caller's favourites."""
    await set_favorite(request, principal(request), video_id_of(request), False)
    return ok({"id": video_id_of(request), "favorite": False})


@routes.post(r"/videos/{id:\d+}/favorite")
@signed_in
async def favorite_submit(request: web.Request) -> web.Response:
    """The player's favourite button (a form: works without JavaScript)."""
    wanted = (await request.post()).get("favorite") == "1"
    await set_favorite(request, principal(request), video_id_of(request), wanted)
    return web.Response(status=303, headers={"Location": f"/videos/{video_id_of(request)}"})


@routes.get(r"/videos/{id:\d+}")
@signed_in
async def player_page(request: web.Request) -> web.Response:
    """The player: starts where the learner left off (a media fragment, so it works without JavaScript)."""
    svc = request.app[MEDIA]
    p = principal(request)
    row = await playable(svc.repo, p, video_id_of(request))
    pos = (await _positions(request, p, [row["id"]])).get(row["id"])
    start = 0
    if pos is not None and not _watched(row, pos) and pos["position_s"] > 1:
        start = round(float(pos["position_s"]), 1)  # a media fragment takes tenths: resume exactly
    favorite = row["id"] in await _favorites(request, p)
    return templating.render(request, "media/player.html", {
        "video": dict(row), "start": start, "favorite": favorite,
        "poster": f"/videos/{row['id']}/thumbnail" if row["thumbnail_key"] else ""})


@routes.get("/videos")
@signed_in
async def list_page(request: web.Request) -> web.Response:
    """Videos available in the learner's facilities (all available ones for admins), with length and watched marks."""
    svc = request.app[MEDIA]
    p = principal(request)
    page = page_params(request, default_per_page=24, max_per_page=96)
    favorites = await _favorites(request, p)
    only_favorites = request.query.get("favorites") == "1"
    if only_favorites:
        rows, total = await svc.repo.list(availability=Availability.AVAILABLE, facility_id=None,
                                          visible_to=_facilities(p), limit=10_000, offset=0)
        kept = [r for r in rows if r["id"] in favorites]
        rows, total = kept[page.offset:page.offset + page.limit], len(kept)
    else:
        rows, total = await svc.repo.list(availability=Availability.AVAILABLE, facility_id=None,
                                          visible_to=_facilities(p), limit=page.limit, offset=page.offset)
    positions = await _positions(request, p, [r["id"] for r in rows])
    videos = [{"id": r["id"], "title": r["title"] or "", "duration_s": r["duration_s"],
               "thumb": bool(r["thumbnail_key"]), "watched": _watched(r, positions.get(r["id"])),
               "started": r["id"] in positions, "favorite": r["id"] in favorites} for r in rows]
    return templating.render(request, "media/list.html", {"videos": videos, "meta": page_meta(page, total),
                                                          "page": page.page, "only_favorites": only_favorites})


async def home_videos(request: web.Request, p: Principal) -> templating.Section | None:
    """Continue watching: started, unfinished videos this person may still play."""
    svc = request.app[MEDIA]
    rows, _ = await svc.repo.list(availability=Availability.AVAILABLE, facility_id=None,
                                  visible_to=_facilities(p), limit=200, offset=0)
    by_id = {r["id"]: r for r in rows}
    positions = await request.app[DB].fetchall(
        "SELECT video_id, position_s, completed FROM video_positions WHERE user_id = ? AND completed = 0 "
        "ORDER BY updated_at DESC LIMIT 20", (p.user_id,))
    going = [{"id": r["video_id"], "title": by_id[r["video_id"]]["title"], "at": r["position_s"],
              "duration_s": by_id[r["video_id"]]["duration_s"]}
             for r in positions if r["video_id"] in by_id and not _watched(by_id[r["video_id"]], r)][:5]
    if not going and not rows:
        return None
    return templating.Section(20, "media/home.html", {"going": going, "count": len(rows)})


async def watching_minutes(app: web.Application, p: Principal, since: str) -> dict[str, float]:
    """Minutes of watching per day in the caller's facilities (all of them for system admins)."""
    scope, params = ("", []) if p.role is Role.SYSTEM_ADMIN else (
        " AND facility_id IN (SELECT value FROM json_each(?))", [json.dumps(sorted(p.facility_ids))])
    rows = await app[DB].fetchall(
        f"SELECT day, sum(seconds) AS s FROM video_watch_activity WHERE day >= ?{scope} GROUP BY day",  # noqa: S608
        [since, *params])
    return {r["day"]: r["s"] / 60 for r in rows}


@routes.get("/admin/videos")
@roles(Role.FACILITY_ADMIN, Role.DEPARTMENT_ADMIN)
async def admin_page(request: web.Request) -> web.Response:
    """The staff video page: add by URL or upload, live download progress, visibility (script-driven)."""
    return templating.render(request, "media/admin.html")


def setup(app: web.Application) -> None:
    """Add the pages, templates, navigation, the home section, the chart series and local assets (no CDN)."""
    app.router.add_routes(routes)
    app.router.add_static("/static/media/", WEB / "static", name="media-static")
    templating.add_templates(app, TEMPLATES)
    templating.add_nav(app, templating.NavItem(20, "/videos", N_("Videos")))
    templating.add_home_section(app, home_videos)
    templating.add_admin_page(app, 30, "/admin/videos", N_("Videos"), N_(
        "Add videos by URL or upload, follow downloads, choose where each is visible."))
    app[ACTIVITY].append(ActivitySource("watching", N_("Watching"), watching_minutes))
