"""What sync shows on pages: "my courses" on the learner home, provider health on the dashboard, and the
staff page /admin/providers (state, runs, refused deliveries with retry, through the API's functions)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from appliance.core.errors import ApiError
from appliance.keys import DB
from appliance.sync.api_courses import progress_rows
from appliance.sync.api_status import dead_letter_items, provider_status, recent_runs, retry_dead_letter_row
from appliance.web import i18n, templating
from appliance.web.i18n import N_
from appliance.web.messages import sentence
from appliance.web.policy import Principal, Role, principal, roles

TEMPLATES = Path(__file__).resolve().parent / "templates"
routes = web.RouteTableDef()


async def home_courses(request: web.Request, p: Principal) -> templating.Section | None:
    """The learner's courses with the progress last synced from the LMS (nothing when not enrolled)."""
    rows = await progress_rows(request.app[DB], p.user_id, 20, 0)
    if not rows:
        return None
    courses = [{"name": r["course_name"], "state": r["state"], "done": r["milestones_done"],
                "total": r["total_milestones"], "grade": r["grade"]} for r in rows]
    return templating.Section(30, "sync/home.html", {"courses": courses})


async def dashboard_providers(request: web.Request, p: Principal) -> templating.Section | None:
    """Each provider's uplink, queue depth and dead letters, as the sync status API reports them."""
    providers, unpublished = await provider_status(request.app, p)
    return templating.Section(10, "sync/dashboard.html", {"providers": providers, "unpublished": unpublished})


@routes.get("/admin/providers")
@roles(Role.FACILITY_ADMIN, Role.DEPARTMENT_ADMIN)
async def providers_page(request: web.Request) -> web.Response:
    """Each provider's state and uplink, its recent runs, and the deliveries it refused (with retry)."""
    return await _providers(request)


async def _providers(request: web.Request, *, error: str = "", status: int = 200) -> web.Response:
    p = principal(request)
    providers, unpublished = await provider_status(request.app, p)
    letters = await dead_letter_items(request.app, p, "open")
    runs = (await recent_runs(request.app, p))[:20]
    retried = request.query.get("retried") == "1" and not error
    return templating.render(request, "sync/admin_providers.html", {
        "providers": providers, "unpublished": unpublished, "letters": letters[:100], "letter_count": len(letters),
        "runs": runs, "error": error, "flash_kind": "ok",
        "flash": i18n.translate(request, N_("Queued for another try.")) if retried else ""}, status=status)


@routes.post(r"/admin/providers/dead-letters/{id:\d{1,12}}/retry")
@roles(Role.FACILITY_ADMIN, Role.DEPARTMENT_ADMIN)
async def retry_submit(request: web.Request) -> web.Response:
    """Queue a refused delivery for another push."""
    try:
        await retry_dead_letter_row(request.app, principal(request), int(request.match_info["id"]))
    except ApiError as exc:
        token = i18n.activate(i18n.locale_of(request))
        try:
            text = sentence(exc.code, exc.message)
        finally:
            i18n._current.reset(token)
        return await _providers(request, error=text, status=exc.status)
    return web.Response(status=303, headers={"Location": "/admin/providers?retried=1"})


def setup(app: web.Application) -> None:
    """Register the sync sections and their templates."""
    templating.add_templates(app, TEMPLATES)
    templating.add_home_section(app, home_courses)
    templating.add_dashboard_section(app, dashboard_providers)
    app.router.add_routes(routes)
    templating.add_admin_page(app, 40, "/admin/providers", N_("Learning systems"),
                              N_("Connection state, recent sync runs, refused deliveries with retry."))
