"""The staff page /admin/webhooks (system admins, as the API): list, create (the signing secret shown once),
enable/disable, delete, send a test, and each webhook's recent deliveries, through the API's own functions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from appliance.core.errors import ApiError
from appliance.db.events import DOMAIN_EVENTS
from appliance.events import api
from appliance.events.store import WEBHOOK_COLUMNS, webhook_view
from appliance.keys import DB
from appliance.web import i18n, templating
from appliance.web.i18n import N_
from appliance.web.messages import error_sentence
from appliance.web.policy import principal, roles

TEMPLATES = Path(__file__).resolve().parent / "templates"
routes = web.RouteTableDef()
DELIVERIES_SHOWN = 10
NOTICES = {"saved": N_("Saved."), "deleted": N_("Deleted."),
           "pinged": N_("A test delivery is queued; its result shows under Recent deliveries.")}



async def _page(request: web.Request, *, error: str = "", status: int = 200, created: dict[str, Any] | None = None,
                form: dict[str, Any] | None = None) -> web.Response:
    app = request.app
    rows = await app[DB].fetchall(f"SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY id")
    hooks = []
    for row in rows:
        view = webhook_view(row)
        view["deliveries"], view["delivery_total"] = await api.deliveries(app, row, DELIVERIES_SHOWN, 0)
        hooks.append(view)
    done = request.query.get("done", "")
    flash = i18n.translate(request, NOTICES[done]) if done in NOTICES and not error and not created else ""
    return templating.render(request, "events/admin_webhooks.html", {
        "hooks": hooks, "error": error, "created": created, "flash": flash, "flash_kind": "ok",
        "event_types": [t.value for t in DOMAIN_EVENTS],
        "form": {"url": "", "description": "", "events": [], **(form or {})}}, status=status)


def _done(what: str) -> web.Response:
    return web.Response(status=303, headers={"Location": f"/admin/webhooks?done={what}"})


@routes.get("/admin/webhooks")
@roles()
async def webhooks_page(request: web.Request) -> web.Response:
    """Every webhook with its state and recent deliveries, and the form to add one."""
    return await _page(request)


@routes.post("/admin/webhooks")
@roles()
async def create_submit(request: web.Request) -> web.Response:
    """Add a webhook; the page shows its signing secret this once."""
    form = await request.post()
    chosen = [str(v) for v in form.getall("events", [])]
    url, description = str(form.get("url", "")), str(form.get("description", ""))
    kept = {"url": url, "description": description, "events": chosen}
    body = {"url": url.strip(), "description": description, "events": chosen or ["*"]}
    try:
        created = await api.add_webhook(request.app, principal(request).user_id, body)
    except ApiError as exc:
        return await _page(request, error=error_sentence(request, exc), status=exc.status, form=kept)
    return await _page(request, created=created)


async def _row(request: web.Request) -> Any:
    return await api.webhook_row(request.app, int(request.match_info["id"]))


@routes.post(r"/admin/webhooks/{id:\d{1,12}}/state")
@roles()
async def state_submit(request: web.Request) -> web.Response:
    """Enable (which clears the failure streak) or disable a webhook."""
    form = await request.post()
    try:
        await api.change_webhook(request.app, await _row(request), {"enabled": form.get("enabled") == "1"})
    except ApiError as exc:
        return await _page(request, error=error_sentence(request, exc), status=exc.status)
    return _done("saved")


@routes.post(r"/admin/webhooks/{id:\d{1,12}}/delete")
@roles()
async def delete_submit(request: web.Request) -> web.Response:
    """Delete a webhook with its delivery log."""
    try:
        await api.remove_webhook(request.app, await _row(request))
    except ApiError as exc:
        return await _page(request, error=error_sentence(request, exc), status=exc.status)
    return _done("deleted")


@routes.post(r"/admin/webhooks/{id:\d{1,12}}/ping")
@roles()
async def ping_submit(request: web.Request) -> web.Response:
    """Queue a signed `webhook.ping` for this webhook only."""
    try:
        await api.ping_webhook(request.app, await _row(request))
    except ApiError as exc:
        return await _page(request, error=error_sentence(request, exc), status=exc.status)
    return _done("pinged")


def setup(app: web.Application) -> None:
    """Register the staff page and its templates."""
    templating.add_templates(app, TEMPLATES)
    app.router.add_routes(routes)
    templating.add_admin_page(app, 60, "/admin/webhooks", N_("Webhooks"),
                              N_("Tell other systems when something happens here: signed HTTP calls, with a"
                                 " delivery log."))
