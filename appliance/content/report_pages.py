"""The staff usage report page (/admin/reports): the same queries as /api/v1/reports/usage, as tables, a
server-drawn chart of views per day, and CSV downloads from the API."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from appliance.content.routes_reports import REPORTS, usage
from appliance.core.errors import ApiError
from appliance.web import templating
from appliance.web.i18n import N_
from appliance.web.messages import error_sentence
from appliance.web.policy import ADMIN_ROLES, roles

routes = web.RouteTableDef()
TITLES = {"top_articles": N_("Most read articles"), "days": N_("Per day"), "learners": N_("Per learner"),
          "libraries": N_("Per library"), "facilities": N_("Per facility")}


def bars(days: list[dict[str, Any]]) -> dict[str, Any]:
    """Geometry of a bar chart of article views per day."""
    width, height, left, bottom = 700, 180, 40, 24
    peak = max([d["views"] for d in days] + [1])
    slot = (width - left - 10) / max(1, len(days))
    out = [{"x": round(left + i * slot + 1, 1), "w": round(max(2.0, slot - 2), 1),
            "h": round((height - bottom - 10) * d["views"] / peak, 1), "title": f"{d['day']}: {d['views']}"}
           for i, d in enumerate(days)]
    for b in out:
        b["y"] = round(height - bottom - b["h"], 1)
    return {"width": width, "height": height, "bars": out, "peak": peak, "axis_y": height - bottom, "left": left}


@routes.get("/admin/reports")
@roles(*ADMIN_ROLES, facility_scoped=True)
async def reports_page(request: web.Request) -> web.Response:
    """Usage over a period (30 days by default) in the caller's facilities."""
    query = {k: request.query[k] for k in ("from", "to", "facility_id") if request.query.get(k)}
    try:
        reports = {name: await usage(request, name) for name in REPORTS}
        error = ""
    except ApiError as exc:
        error = error_sentence(request, exc)
        reports = {name: [] for name in REPORTS}
    csv_links = {name: "/api/v1/reports/usage?" + urlencode({**query, "format": "csv", "report": name})
                 for name in REPORTS}
    return templating.render(request, "content/admin_reports.html", {
        "reports": reports, "titles": TITLES, "csv": csv_links, "query": query, "error": error,
        "chart": bars(reports["days"])}, status=400 if error else 200)


def setup(app: web.Application) -> None:
    """Register the page and list it in the console."""
    app.router.add_routes(routes)
    templating.add_admin_page(app, 65, "/admin/reports", N_("Reports"),
                              N_("Reading by day, article, learner, library and facility; CSV downloads."))
