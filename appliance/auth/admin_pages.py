"""Staff pages for accounts (/admin/users): search, pages, create, edit, reset password (shown once),
deactivate, sessions and roster import with a per-row report. They call the same functions as the
/api/v1/users routes, so the permission rules are the same: a facility admin sees only their facilities
and manages only lower roles."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from appliance.auth.keys import IDENTITY
from appliance.auth.principals import outranks
from appliance.auth.routes_roster import ImportMode, run_import
from appliance.auth.routes_users import (
    create_account,
    end_all_sessions,
    load_target,
    query_users,
    reset_account_password,
    update_account,
)
from appliance.core.errors import ApiError
from appliance.keys import DB
from appliance.web import i18n, templating
from appliance.web.i18n import N_
from appliance.web.messages import error_sentence
from appliance.web.policy import Principal, Role, can_access_facility, principal, roles
from appliance.web.responses import page_meta, page_params

ADMINS = (Role.FACILITY_ADMIN, Role.DEPARTMENT_ADMIN)
ID = r"{id:\d{1,12}}"
ROLE_NAMES = {"learner": N_("Learner"), "facility_admin": N_("Facility admin"),
              "department_admin": N_("Department admin"), "system_admin": N_("System admin")}
SAVED = {"updated": N_("Changes saved."), "deactivated": N_("The account is deactivated and signed out."),
         "reactivated": N_("The account is active again."), "sessions": N_("Every session of this account ended.")}
FIELDS = ("username", "first_name", "last_name", "email", "doc_id")
routes = web.RouteTableDef()



async def _facilities(request: web.Request, p: Principal) -> list[dict[str, Any]]:
    rows = await request.app[DB].fetchall("SELECT id, name FROM facilities ORDER BY name")
    return [dict(r) for r in rows if can_access_facility(p, r["id"])]


def _grantable(p: Principal) -> list[str]:
    return [r.value for r in Role if outranks(p.role, r)]


async def _form_values(request: web.Request, p: Principal) -> dict[str, Any]:
    return {"facilities": await _facilities(request, p), "roles": _grantable(p), "role_names": ROLE_NAMES}


def _fields(form: Any, *, creating: bool) -> dict[str, Any]:
    """Form fields as the API's JSON body (empty optional fields clear them)."""
    data: dict[str, Any] = {}
    for name in FIELDS:
        if name == "username" and not creating:
            continue
        value = str(form.get(name, "")).strip()
        if name in ("email", "doc_id"):
            data[name] = value or None
        elif value or name != "username":
            data[name] = value
    role = str(form.get("role", ""))
    if role:
        data["role"] = role
    facility = str(form.get("facility_id", ""))
    if facility:
        data["facility_id"] = int(facility) if facility.isdigit() and len(facility) < 12 else facility
    return data


@routes.get("/admin/users")
@roles(*ADMINS, facility_scoped=True)
async def users_page(request: web.Request) -> web.Response:
    """Search and page through accounts."""
    p = principal(request)
    page = page_params(request, default_per_page=25, max_per_page=100)
    query = {k: request.query.get(k, "") for k in ("q", "status", "role")}
    try:
        rows, total = await query_users(request.app[DB], p, query, page)
    except ApiError as exc:
        rows, total = [], 0
        query["error"] = error_sentence(request, exc)
    meta = page_meta(page, total)
    base = {k: v for k, v in query.items() if v and k != "error"}
    facilities = {f["id"]: f["name"] for f in await _facilities(request, p)}
    return templating.render(request, "auth/admin_users.html", {
        "rows": [dict(r) for r in rows], "query": query, "meta": meta, "role_names": ROLE_NAMES,
        "facility_names": facilities, "error": query.get("error", ""),
        "prev_url": "/admin/users?" + urlencode({**base, "page": page.page - 1}) if meta["has_prev"] else "",
        "next_url": "/admin/users?" + urlencode({**base, "page": page.page + 1}) if meta["has_next"] else ""})


@routes.get("/admin/users/new")
@roles(*ADMINS, facility_scoped=True)
async def new_user_page(request: web.Request) -> web.Response:
    """The form to create an account (a temporary password is made and shown once)."""
    p = principal(request)
    return templating.render(request, "auth/admin_user_new.html", {
        **await _form_values(request, p), "values": {"role": "learner", "facility_id": p.facility_id}, "error": ""})


@routes.post("/admin/users/new")
@roles(*ADMINS, facility_scoped=True)
async def create_user_submit(request: web.Request) -> web.Response:
    """Create the account and show its temporary password once (never in a URL)."""
    p = principal(request)
    form = await request.post()
    data = _fields(form, creating=True)
    try:
        row, temporary, _ = await create_account(request, p, dict(data))
    except ApiError as exc:
        return templating.render(request, "auth/admin_user_new.html", {
            **await _form_values(request, p), "values": data, "error": error_sentence(request, exc)}, status=exc.status)
    return templating.render(request, "auth/admin_password_once.html", {
        "target": dict(row), "temporary": temporary, "created": True})


async def _user_view(request: web.Request, p: Principal, target: Any, *, error: str = "",
                     status: int = 200, flash: str = "") -> web.Response:
    sessions = await request.app[IDENTITY].sessions.list_for_user(target["id"])
    return templating.render(request, "auth/admin_user.html", {
        **await _form_values(request, p), "target": dict(target), "values": dict(target), "sessions": sessions,
        "manageable": outranks(p.role, Role(target["role"])), "is_self": target["id"] == p.user_id,
        "error": error, "flash": flash, "flash_kind": "ok"}, status=status)


@routes.get(f"/admin/users/{ID}")
@roles(*ADMINS, facility_scoped=True)
async def user_page(request: web.Request) -> web.Response:
    """One account: edit, reset password, deactivate, sessions."""
    p = principal(request)
    target = await load_target(request, p, manage=False)
    saved = SAVED.get(request.query.get("saved", ""))
    return await _user_view(request, p, target, flash=i18n.translate(request, saved) if saved else "")


async def _manage(request: web.Request) -> tuple[Principal, Any]:
    p = principal(request)
    return p, await load_target(request, p, manage=True)


def _back(target: Any, saved: str) -> web.Response:
    return web.Response(status=303, headers={"Location": f"/admin/users/{target['id']}?saved={saved}"})


@routes.post(f"/admin/users/{ID}")
@roles(*ADMINS, facility_scoped=True)
async def user_submit(request: web.Request) -> web.Response:
    """Save changes to names, email, ID number, role and facility."""
    p, target = await _manage(request)
    data = _fields(await request.post(), creating=False)
    if target["id"] == p.user_id:  # one's own role and facility are not changed from here
        data.pop("role", None)
        data.pop("facility_id", None)
    try:
        await update_account(request, p, target, data)
    except ApiError as exc:
        return await _user_view(request, p, target, error=error_sentence(request, exc), status=exc.status)
    return _back(target, "updated")


@routes.post(f"/admin/users/{ID}/active")
@roles(*ADMINS, facility_scoped=True)
async def active_submit(request: web.Request) -> web.Response:
    """Deactivate (sessions end, tokens revoked) or reactivate an account."""
    p, target = await _manage(request)
    active = str((await request.post()).get("active", "")) == "1"
    try:
        await update_account(request, p, target, {"active": active})
    except ApiError as exc:
        return await _user_view(request, p, target, error=error_sentence(request, exc), status=exc.status)
    return _back(target, "reactivated" if active else "deactivated")


@routes.post(f"/admin/users/{ID}/reset-password")
@roles(*ADMINS, facility_scoped=True)
async def reset_submit(request: web.Request) -> web.Response:
    """Issue a temporary password and show it once on this answer."""
    p, target = await _manage(request)
    try:
        temporary = await reset_account_password(request, p, target)
    except ApiError as exc:
        return await _user_view(request, p, target, error=error_sentence(request, exc), status=exc.status)
    return templating.render(request, "auth/admin_password_once.html", {
        "target": dict(target), "temporary": temporary, "created": False})


@routes.post(f"/admin/users/{ID}/sessions/end")
@roles(*ADMINS, facility_scoped=True)
async def sessions_submit(request: web.Request) -> web.Response:
    """Sign the account out everywhere."""
    p, target = await _manage(request)
    await end_all_sessions(request, p, target)
    return _back(target, "sessions")


@routes.get("/admin/users/import")
@roles(*ADMINS, facility_scoped=True)
async def import_page(request: web.Request) -> web.Response:
    """Paste a roster CSV (a file can be picked to fill the box); nothing is written until it is sent."""
    return templating.render(request, "auth/admin_import.html", {"report": None, "csv": "", "mode": "per_row",
                                                                 "error": "", "applied": False})


@routes.post("/admin/users/import")
@roles(*ADMINS, facility_scoped=True)
async def import_submit(request: web.Request) -> web.Response:
    """Import and show the per-row report, with the temporary passwords of new accounts (shown once)."""
    p = principal(request)
    form = await request.post()
    text = str(form.get("csv", ""))
    mode_raw = str(form.get("mode", ImportMode.PER_ROW.value))
    mode = ImportMode.ALL_OR_NOTHING if mode_raw == ImportMode.ALL_OR_NOTHING.value else ImportMode.PER_ROW
    values: dict[str, Any] = {"csv": text, "mode": mode.value, "report": None, "error": "", "applied": False}
    try:
        report, applied = await run_import(request, p, text.encode("utf-8"), mode)
    except ApiError as exc:
        values["error"] = error_sentence(request, exc)
        return templating.render(request, "auth/admin_import.html", values, status=exc.status)
    values.update({"report": report, "applied": applied, "csv": "" if applied and not report.errors else text})
    return templating.render(request, "auth/admin_import.html", values)


def setup(app: web.Application) -> None:
    """Register the account pages and list them in the staff console."""
    app.router.add_routes(routes)
    templating.add_admin_page(app, 10, "/admin/users", N_("Accounts"),
                              N_("Find, create and edit accounts, reset passwords, import a roster."))
