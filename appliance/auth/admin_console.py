"""Staff pages for the audit log (/admin/audit, filterable) and facilities (/admin/facilities), through the
same functions as /api/v1/audit and /api/v1/facilities."""

from __future__ import annotations

import json
import zoneinfo
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from appliance.auth.audit import AuditAction
from appliance.auth.routes_admin import create_facility_row, query_audit, update_facility_row
from appliance.auth.routes_users import scope_clause
from appliance.auth.webutil import path_id
from appliance.core.errors import ApiError
from appliance.keys import DB
from appliance.web import i18n, templating
from appliance.web.i18n import N_
from appliance.web.messages import error_sentence
from appliance.web.policy import Role, principal, roles
from appliance.web.responses import page_meta, page_params

ADMINS = (Role.FACILITY_ADMIN, Role.DEPARTMENT_ADMIN)
routes = web.RouteTableDef()



@routes.get("/admin/audit")
@roles(*ADMINS, facility_scoped=True)
async def audit_page(request: web.Request) -> web.Response:
    """Who did what, newest first, filtered by action and time."""
    p = principal(request)
    page = page_params(request, default_per_page=50, max_per_page=200)
    query = {k: request.query.get(k, "") for k in ("action", "since", "until", "target_user_id")}
    error = ""
    try:
        rows, total = await query_audit(request.app[DB], p, query, page)
    except ApiError as exc:
        rows, total, error = [], 0, error_sentence(request, exc)
    meta = page_meta(page, total)
    base = {k: v for k, v in query.items() if v}
    entries = [{**dict(r), "details": json.loads(r["details"])} for r in rows]
    return templating.render(request, "auth/admin_audit.html", {
        "entries": entries, "query": query, "meta": meta, "actions": [a.value for a in AuditAction],
        "error": error,
        "prev_url": "/admin/audit?" + urlencode({**base, "page": page.page - 1}) if meta["has_prev"] else "",
        "next_url": "/admin/audit?" + urlencode({**base, "page": page.page + 1}) if meta["has_next"] else ""})


async def _facilities_page(request: web.Request, *, error: str = "", status: int = 200) -> web.Response:
    p = principal(request)
    where, params = scope_clause(p, "id")
    rows = await request.app[DB].fetchall(f"SELECT * FROM facilities WHERE {where} ORDER BY name", params)  # noqa: S608
    saved = request.query.get("saved") == "1" and not error
    return templating.render(request, "auth/admin_facilities.html", {
        "facilities": [dict(r) for r in rows], "system_admin": p.role is Role.SYSTEM_ADMIN,
        "zones": sorted(zoneinfo.available_timezones()), "error": error,
        "flash": i18n.translate(request, N_("Saved.")) if saved else "", "flash_kind": "ok"}, status=status)


@routes.get("/admin/facilities")
@roles(*ADMINS, facility_scoped=True)
async def facilities_page(request: web.Request) -> web.Response:
    """Facilities the caller may act on: name, time zone, anonymous browsing."""
    return await _facilities_page(request)


@routes.post("/admin/facilities")
@roles(Role.SYSTEM_ADMIN)
async def facility_create(request: web.Request) -> web.Response:
    """Create a facility."""
    form = await request.post()
    try:
        await create_facility_row(request, principal(request), str(form.get("name", "")),
                                  str(form.get("timezone", "UTC")))
    except ApiError as exc:
        return await _facilities_page(request, error=error_sentence(request, exc), status=exc.status)
    return web.Response(status=303, headers={"Location": "/admin/facilities?saved=1"})


@routes.post(r"/admin/facilities/{id:\d{1,12}}")
@roles(*ADMINS, facility_scoped=True)
async def facility_update(request: web.Request) -> web.Response:
    """Save a facility's name, time zone and anonymous browsing."""
    form = await request.post()
    data: dict[str, Any] = {"name": str(form.get("name", "")), "timezone": str(form.get("timezone", "")),
                            "anonymous_browsing": form.get("anonymous_browsing") == "1"}
    try:
        await update_facility_row(request, principal(request), path_id(request), data)
    except ApiError as exc:
        return await _facilities_page(request, error=error_sentence(request, exc), status=exc.status)
    return web.Response(status=303, headers={"Location": "/admin/facilities?saved=1"})


def setup(app: web.Application) -> None:
    """Register the pages and list them in the console."""
    app.router.add_routes(routes)
    templating.add_admin_page(app, 60, "/admin/facilities", N_("Facilities"),
                              N_("Units: names, time zones, browsing without an account."))
    templating.add_admin_page(app, 70, "/admin/audit", N_("Audit log"),
                              N_("Who signed in, changed accounts or settings, and when."))
