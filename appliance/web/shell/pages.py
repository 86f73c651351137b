"""Core pages: `/` (the learner home, composed of what features add), `/admin` (the staff dashboard)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from appliance.keys import CLOCK
from appliance.observability.health import system_snapshot
from appliance.web import templating
from appliance.web.i18n import N_
from appliance.web.middlewares import add_guard
from appliance.web.policy import Principal, Role, maybe_principal, principal, public, roles
from appliance.web.urls import login_redirect, safe_next  # noqa: F401 - re-exported for features

CHART_DAYS = 14
ActivityQuery = Callable[[web.Application, Principal, str], Awaitable[dict[str, float]]]
ACTIVITY = web.AppKey("activity_sources", list)
HEALTH_ITEMS = web.AppKey("health_items", list)
routes = web.RouteTableDef()


@dataclass(frozen=True)
class ActivitySource:
    """One series of the dashboard chart: minutes per UTC day since a day (YYYY-MM-DD) for the caller's scope."""

    key: str  # css class and legend: "reading" or "watching"
    label: str  # English msgid
    query: ActivityQuery


@routes.get("/")
@public
async def start(request: web.Request) -> web.Response:
    """The learner home: what each feature has to show this person (libraries, videos, courses, links)."""
    p = maybe_principal(request)
    if p is None:
        raise web.HTTPSeeOther("/login")
    found = await templating.sections(request, p, request.app[templating.HOME_SECTIONS])
    return templating.render(request, "home.html", {"sections": found})


@routes.get("/favicon.ico")
@public
async def favicon(request: web.Request) -> web.Response:
    """Browsers ask for this on every site; an empty answer they cache beats a 404 in every log and metric."""
    return web.Response(status=204, headers={"Cache-Control": "public, max-age=604800"})


def chart(series: list[tuple[ActivitySource, dict[str, float]]], days: list[str]) -> dict[str, object]:
    """Bar geometry of the activity chart (minutes per day, one bar per series), drawn as SVG on the server."""
    width, height, left, bottom, top = 700, 220, 40, 30, 10
    peak = max([v for _, values in series for v in values.values()] + [1.0])
    slot = (width - left - 10) / max(1, len(days))
    bar = max(2.0, slot / max(1, len(series)) - 3)
    bars = []
    for day_index, day in enumerate(days):
        for series_index, (source, values) in enumerate(series):
            value = values.get(day, 0.0)
            h = (height - bottom - top) * value / peak
            bars.append({"x": round(left + day_index * slot + series_index * (bar + 1), 1),
                         "y": round(height - bottom - h, 1), "w": round(bar, 1), "h": round(h, 1),
                         "cls": source.key, "title": f"{day}: {value:.0f}"})
    labels = [{"x": round(left + i * slot + slot / 2, 1), "text": day[5:]} for i, day in enumerate(days) if i % 2 == 0]
    return {"width": width, "height": height, "bars": bars, "labels": labels, "peak": round(peak),
            "axis_y": height - bottom, "left": left, "top": top}


@routes.get("/admin")
@roles(Role.FACILITY_ADMIN, Role.DEPARTMENT_ADMIN)
async def dashboard(request: web.Request) -> web.Response:
    """The staff dashboard: health, activity over 14 days, and the way to every staff page."""
    p = principal(request)
    system = await system_snapshot(request.app)
    today = request.app[CLOCK].now().date()
    days = [(today - dt.timedelta(days=n)).isoformat() for n in range(CHART_DAYS - 1, -1, -1)]
    series = [(source, await source.query(request.app, p, days[0])) for source in request.app[ACTIVITY]]
    totals = [{"key": s.key, "label": s.label, "minutes": round(sum(v.values()))} for s, v in series]
    found = await templating.sections(request, p, request.app[templating.DASHBOARD_SECTIONS])
    return templating.render(request, "admin/dashboard.html", {
        "system": system, "chart": chart(series, days), "totals": totals, "sections": found,
        "first_day": days[0], "last_day": days[-1]})


PENDING_PASSWORD_PATHS = ("/account/password", "/logout", "/static/", "/favicon.ico")


async def pending_password_guard(request: web.Request) -> None:
    """While a temporary password is pending, pages lead only to the password form (the API refuses too)."""
    p = maybe_principal(request)
    if (p is not None and p.must_change_password and request.method == "GET"
            and "text/html" in request.headers.get("Accept", "")
            and not request.path.startswith(("/api/", *PENDING_PASSWORD_PATHS))):
        raise web.HTTPSeeOther("/account/password")


def setup(app: web.Application) -> None:
    """Register the core pages, the template machinery and the dashboard hooks."""
    templating.setup(app)
    app[ACTIVITY] = []
    app.router.add_routes(routes)
    templating.add_nav(app, templating.NavItem(90, "/admin", N_("Staff console"), admin_only=True))
    add_guard(app, pending_password_guard, 85)
