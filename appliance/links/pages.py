"""Helpful links on pages: the learner home section and the staff page /admin/links (same functions as the API)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from appliance.core.errors import ApiError
from appliance.keys import DB
from appliance.links import service
from appliance.web import i18n, templating
from appliance.web.i18n import N_
from appliance.web.messages import error_sentence
from appliance.web.policy import Principal, Role, can_access_facility, principal, roles

ADMINS = (Role.FACILITY_ADMIN, Role.DEPARTMENT_ADMIN)
TEMPLATES = Path(__file__).resolve().parent / "templates"
routes = web.RouteTableDef()


async def home_links(request: web.Request, p: Principal) -> templating.Section | None:
    """Links visible in the learner's facilities (staff see what their learners see)."""
    db = request.app[DB]
    rows = await service.visible_links(db, p)
    if p.role in (Role.FACILITY_ADMIN, Role.DEPARTMENT_ADMIN, Role.SYSTEM_ADMIN):
        mine = p.facility_ids | {p.facility_id}
        rows = [r for r in rows if set(await service.facilities_of(db, r["id"])) & mine]
    if not rows:
        return None
    return templating.Section(40, "links/home.html", {"links": [service.link_json(r) for r in rows]})


async def _page(request: web.Request, *, error: str = "", status: int = 200) -> web.Response:
    p = principal(request)
    db = request.app[DB]
    rows = await service.visible_links(db, p)
    links = [service.link_json(r, await service.facilities_of(db, r["id"])) for r in rows]
    facilities = [dict(r) for r in await db.fetchall("SELECT id, name FROM facilities ORDER BY name")
                  if can_access_facility(p, r["id"])]
    saved = request.query.get("saved") == "1" and not error
    return templating.render(request, "links/admin.html", {
        "links": links, "facilities": facilities, "error": error, "flash_kind": "ok",
        "flash": i18n.translate(request, N_("Saved.")) if saved else ""}, status=status)



def _fields(form: Any) -> dict[str, Any]:
    return {k: str(form.get(k, "")) for k in ("title", "description", "url")}


def _wanted(form: Any) -> list[int]:
    return sorted({int(v) for v in form.getall("facility", []) if str(v).isdigit() and len(str(v)) < 12})


@routes.get("/admin/links")
@roles(*ADMINS, facility_scoped=True)
async def links_page(request: web.Request) -> web.Response:
    """Every link with its visibility; add, edit, delete."""
    return await _page(request)


def _saved() -> web.Response:
    return web.Response(status=303, headers={"Location": "/admin/links?saved=1"})


@routes.post("/admin/links")
@roles(*ADMINS, facility_scoped=True)
async def create_submit(request: web.Request) -> web.Response:
    """Add a link, visible in the ticked facilities."""
    p = principal(request)
    form = await request.post()
    db = request.app[DB]
    try:
        link_id = await service.create(db, p, service.check_fields(_fields(form), creating=True))
        await service.set_visibility(db, p, link_id, _wanted(form))
    except ApiError as exc:
        return await _page(request, error=error_sentence(request, exc), status=exc.status)
    return _saved()


@routes.post(r"/admin/links/{id:\d{1,12}}")
@roles(*ADMINS, facility_scoped=True)
async def update_submit(request: web.Request) -> web.Response:
    """Save a link's text, address and visibility, or delete it."""
    p = principal(request)
    form = await request.post()
    db = request.app[DB]
    link_id = int(request.match_info["id"])
    try:
        await service.load(db, p, link_id)
        if form.get("delete") == "1":
            await service.delete(db, p, link_id)
        else:
            await service.update(db, link_id, service.check_fields(_fields(form), creating=False))
            await service.set_visibility(db, p, link_id, _wanted(form))
    except ApiError as exc:
        return await _page(request, error=error_sentence(request, exc), status=exc.status)
    return _saved()


def setup(app: web.Application) -> None:
    """Register the section, the staff page and the templates."""
    app.router.add_routes(routes)
    templating.add_templates(app, TEMPLATES)
    templating.add_home_section(app, home_links)
    templating.add_admin_page(app, 50, "/admin/links", N_("Helpful links"),
                              N_("Links learners see on their home page, per unit, with a local icon."))
