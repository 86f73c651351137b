"""Staff page for libraries (/admin/libraries): visibility per facility, featured, block lists, rescan and
import with progress. Every change goes through the same functions as the /api/v1/libraries routes."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from appliance.content.keys import CONTENT
from appliance.content.routes_api import (
    COLUMNS,
    _visible_library,
    queue_import,
    run_rescan,
    set_blocklist,
    set_featured,
    set_visibility,
)
from appliance.content.routes_catalog import browse_upstream
from appliance.core.errors import ApiError
from appliance.keys import DB
from appliance.web import i18n, templating
from appliance.web.i18n import N_
from appliance.web.messages import error_sentence
from appliance.web.policy import Principal, Role, can_access_facility, principal, roles

ADMINS = (Role.FACILITY_ADMIN, Role.DEPARTMENT_ADMIN)
SAVED = {"visibility": N_("Visibility saved."), "blocklist": N_("Block list saved."),
         "rescan": N_("The content folder was scanned."), "import": N_("The import is queued.")}
routes = web.RouteTableDef()



async def _facilities(request: web.Request, p: Principal) -> list[dict[str, Any]]:
    rows = await request.app[DB].fetchall("SELECT id, name FROM facilities ORDER BY name")
    return [dict(r) for r in rows if can_access_facility(p, r["id"])]


async def _page(request: web.Request, *, error: str = "", status: int = 200) -> web.Response:
    p = principal(request)
    service = request.app[CONTENT]
    await service.refresh(force=True)
    db = request.app[DB]
    rows = await db.fetchall(f"SELECT {COLUMNS} FROM libraries ORDER BY title COLLATE NOCASE, id")  # noqa: S608
    featured = {(r["library_id"], r["facility_id"]) for r in await db.fetchall(
        "SELECT library_id, facility_id FROM library_featured")}
    libraries = []
    for r in rows:
        lib = service.directory.by_id.get(r["id"])
        libraries.append({**dict(r), "visible_in": sorted(lib.facilities) if lib else [],
                          "featured": (r["id"], p.facility_id) in featured,
                          "patterns": len(lib.blocklist.patterns) if lib else 0})
    imports = [] if p.role is not Role.SYSTEM_ADMIN else [dict(r) for r in await db.fetchall(
        "SELECT id, url, file_name, state, bytes_done, bytes_total, error FROM library_imports"
        " ORDER BY id DESC LIMIT 10")]
    saved = SAVED.get(request.query.get("saved", ""))
    return templating.render(request, "content/admin_libraries.html", {
        "libraries": libraries, "facilities": await _facilities(request, p), "imports": imports,
        "system_admin": p.role is Role.SYSTEM_ADMIN, "home_facility": p.facility_id,
        "error": error, "flash": i18n.translate(request, saved) if saved and not error else "",
        "flash_kind": "ok"}, status=status)


@routes.get("/admin/libraries")
@roles(*ADMINS, facility_scoped=True)
async def libraries_page(request: web.Request) -> web.Response:
    """Every library with its state, size, visibility and featuring."""
    return await _page(request)


def _done(saved: str, anchor: str = "") -> web.Response:
    return web.Response(status=303, headers={"Location": f"/admin/libraries?saved={saved}{anchor}"})


@routes.post(r"/admin/libraries/{id:\d+}")
@roles(*ADMINS, facility_scoped=True)
async def library_submit(request: web.Request) -> web.Response:
    """Save which of the caller's facilities see a library, and whether it is featured in their own."""
    p = principal(request)
    form = await request.post()
    try:
        lib = await _visible_library(request, p)
        wanted = sorted({int(v) for v in form.getall("facility", []) if str(v).isdigit() and len(str(v)) < 12})
        await set_visibility(request, p, lib, wanted)
        await set_featured(request, p, lib, form.get("featured") == "1", p.facility_id)
    except ApiError as exc:
        return await _page(request, error=error_sentence(request, exc), status=exc.status)
    return _done("visibility", f"#library-{lib['id']}")


@routes.get(r"/admin/libraries/{id:\d+}/blocklist")
@roles(*ADMINS, facility_scoped=True)
async def blocklist_page(request: web.Request) -> web.Response:
    """The block list editor: one path or pattern per line (department and system admins may change it)."""
    return await _blocklist_page(request)


async def _blocklist_page(request: web.Request, *, text: str | None = None, error: str = "",
                          status: int = 200) -> web.Response:
    p = principal(request)
    lib = await _visible_library(request, p)
    db = request.app[DB]
    patterns = [r["pattern"] for r in await db.fetchall(
        "SELECT pattern FROM library_blocklist WHERE library_id = ? ORDER BY pattern", (lib["id"],))]
    history = [{"at": r["created_at"], **json.loads(r["details"])} for r in await db.fetchall(
        "SELECT created_at, details FROM library_audit WHERE library_id = ? AND action = 'blocklist'"
        " ORDER BY id DESC LIMIT 10", (lib["id"],))]
    return templating.render(request, "content/admin_blocklist.html", {
        "lib": lib, "text": "\n".join(patterns) if text is None else text, "history": history,
        "can_edit": p.role in (Role.DEPARTMENT_ADMIN, Role.SYSTEM_ADMIN), "error": error}, status=status)


@routes.post(r"/admin/libraries/{id:\d+}/blocklist")
@roles(Role.DEPARTMENT_ADMIN, Role.SYSTEM_ADMIN)
async def blocklist_submit(request: web.Request) -> web.Response:
    """Replace the block list with the lines of the box."""
    p = principal(request)
    text = str((await request.post()).get("patterns", ""))
    patterns = [line.strip() for line in text.splitlines() if line.strip()]
    try:
        await set_blocklist(request, p, await _visible_library(request, p), patterns)
    except ApiError as exc:
        return await _blocklist_page(request, text=text, error=error_sentence(request, exc), status=exc.status)
    return _done("blocklist")


@routes.post("/admin/libraries/rescan")
@roles(Role.SYSTEM_ADMIN)
async def rescan_submit(request: web.Request) -> web.Response:
    """Scan the content folder now."""
    try:
        await run_rescan(request)
    except ApiError as exc:
        return await _page(request, error=error_sentence(request, exc), status=exc.status)
    return _done("rescan")


@routes.post("/admin/libraries/import")
@roles(Role.SYSTEM_ADMIN)
async def import_submit(request: web.Request) -> web.Response:
    """Queue the download of an archive by URL (the primary fetches it; progress shows on this page)."""
    p = principal(request)
    form = await request.post()
    digest = str(form.get("checksum", "")).strip() or None
    algo = "sha256" if digest else None
    try:
        await queue_import(request, p, str(form.get("url", "")).strip(), algo, digest)
    except ApiError as exc:
        return await _page(request, error=error_sentence(request, exc), status=exc.status)
    return _done("import", "#imports")


@routes.get("/admin/libraries/catalog")
@roles(Role.SYSTEM_ADMIN)
async def catalog_page(request: web.Request) -> web.Response:
    """Browse the upstream catalog (language, words) and import a book with one button."""
    values: dict[str, Any] = {"books": [], "total": 0, "error": "", "q": request.query.get("q", ""),
                              "lang": request.query.get("lang", ""), "source": ""}
    try:
        total, books, base, _ = await browse_upstream(request)
        values.update(total=total, books=[b.as_dict() for b in books], source=base)
    except ApiError as exc:
        values["error"] = error_sentence(request, exc)
    return templating.render(request, "content/admin_catalog.html", values)


def setup(app: web.Application) -> None:
    """Register the library staff pages and list them in the console."""
    app.router.add_routes(routes)
    templating.add_admin_page(app, 20, "/admin/libraries", N_("Libraries"),
                              N_("Choose which units see each book, feature books, block pages, add archives."))


