"""Reading beacon and admin usage reports (JSON, or CSV with format=csv)."""

import csv
import datetime as dt
import io
import json
from typing import Any

from aiohttp import web

from appliance.content.directory import can_see
from appliance.content.keys import CONTENT
from appliance.content.tracking import MAX_BEACON_SECONDS, Reading
from appliance.core.errors import bad_request, not_found
from appliance.keys import CLOCK, DB
from appliance.web.openapi import BOOL, INT, STR, arr, nullable, obj, spec, text
from appliance.web.policy import ADMIN_ROLES, Role, principal, require_facility, roles, signed_in
from appliance.web.responses import ok, read_json

routes = web.RouteTableDef()
REPORTS = ("top_articles", "learners", "libraries", "facilities", "days")
TOP_N = 100
_TOTALS = arr(obj("id", "views", "seconds", id=nullable(INT), name=nullable(STR), views=INT, seconds=INT))
USAGE_SCHEMA = obj(
    *REPORTS,
    top_articles=arr(obj("library", "path", "views", "readers", library=nullable(STR), path=STR,
                         title=nullable(STR), views=INT, readers=INT)),
    learners=_TOTALS, libraries=_TOTALS, facilities=_TOTALS,
    days=arr(obj("day", "views", "readers", "seconds", day=STR, views=INT, readers=INT, seconds=INT)),
)
"""Every usage report, as JSON."""
_DATE = {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}


@routes.post("/api/v1/reading")
@signed_in
@spec(status=202, body=obj("book", "path", "seconds", book=text(200), path=text(4096, 1),
                           seconds={"type": "integer", "minimum": 1, "maximum": MAX_BEACON_SECONDS}),
      response=obj("queued", "credited_s", queued=BOOL, credited_s={"type": "integer", "minimum": 0}))
async def reading_beacon(request: web.Request) -> web.Response:
    """The reader page reports seconds of visible reading on an article (queued, written in batches)."""
    p = principal(request)
    body = await read_json(request, limit=4096)
    book, path, seconds = body.get("book"), body.get("path"), body.get("seconds")
    if not isinstance(book, str) or not isinstance(path, str) or not path or len(path) > 4096:
        raise bad_request("invalid_body", "book and path must be strings", {"field": "path"})
    if not isinstance(seconds, int) or isinstance(seconds, bool) or not 0 < seconds <= MAX_BEACON_SECONDS:
        raise bad_request("invalid_body", f"seconds must be an integer from 1 to {MAX_BEACON_SECONDS}",
                          {"field": "seconds"})
    service = request.app[CONTENT]
    await service.refresh()
    lib = service.directory.by_slug.get(book)
    if lib is None or not can_see(p, lib, None):
        raise not_found("no such library")
    clock = request.app[CLOCK]
    credited = service.reading_clock.credit(p.user_id, seconds, clock.monotonic())
    if credited > 0:
        day = clock.now().date().isoformat()
        service.recorder.add_reading(Reading(p.user_id, p.facility_id, lib.id, path.lstrip("/"), day, credited))
    return ok({"queued": True, "credited_s": credited}, status=202)


def _date(request: web.Request, name: str, default: dt.date) -> dt.date:
    raw = request.query.get(name)
    if not raw:
        return default
    try:
        if len(raw) != 10:
            raise ValueError(raw)
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise bad_request("invalid_parameter", f"{name} must be a date like 2026-11-26",
                          {"parameter": name}) from None


def _scope(request: web.Request) -> list[int] | None:
    """Facilities the report covers: None = all (system admin without a filter)."""
    p = principal(request)
    raw = request.query.get("facility_id")
    if raw:
        if not raw.isdigit() or len(raw) > 12:
            raise bad_request("invalid_parameter", "facility_id must be an integer", {"parameter": "facility_id"})
        require_facility(p, int(raw))
        return [int(raw)]
    return None if p.role is Role.SYSTEM_ADMIN else sorted(p.facility_ids)


async def usage(request: web.Request, report: str) -> list[dict[str, Any]]:
    """One usage report over [from, to] within the caller's facilities."""
    today = request.app[CLOCK].now().date()
    start = _date(request, "from", today - dt.timedelta(days=30))
    end = _date(request, "to", today)
    if end < start:
        raise bad_request("invalid_parameter", "to is before from", {"parameter": "to"})
    lo, hi = start.isoformat(), (end + dt.timedelta(days=1)).isoformat()
    scope = _scope(request)
    fac_v = "" if scope is None else " AND v.facility_id IN (SELECT value FROM json_each(?))"
    fac_r = "" if scope is None else " AND r.facility_id IN (SELECT value FROM json_each(?))"
    sp: tuple[Any, ...] = () if scope is None else (json.dumps(scope),)
    db = request.app[DB]
    views_where = f"v.viewed_at >= ? AND v.viewed_at < ?{fac_v}"
    read_where = f"r.day >= ? AND r.day < ?{fac_r}"
    if report == "top_articles":
        sql = (f"SELECT l.slug AS library, v.path, MAX(v.title) AS title, COUNT(*) AS views,"
               f" COUNT(DISTINCT v.user_id) AS readers FROM article_views v JOIN libraries l ON l.id = v.library_id"
               f" WHERE {views_where} GROUP BY v.library_id, v.path ORDER BY views DESC, v.path LIMIT {TOP_N}")
        rows = await db.fetchall(sql, (lo, hi, *sp))
    elif report == "days":
        rows = await db.fetchall(
            f"SELECT substr(v.viewed_at, 1, 10) AS day, COUNT(*) AS views, COUNT(DISTINCT v.user_id) AS readers,"
            f" (SELECT COALESCE(SUM(r.seconds), 0) FROM reading_time r WHERE r.day = substr(v.viewed_at, 1, 10)"
            f"{fac_r}) AS seconds FROM article_views v WHERE {views_where} GROUP BY day ORDER BY day",
            (*sp, lo, hi, *sp))
    else:
        key, label, join = {
            "learners": ("user_id", "u.username", "LEFT JOIN users u ON u.id = k.key"),
            "libraries": ("library_id", "l.slug", "LEFT JOIN libraries l ON l.id = k.key"),
            "facilities": ("facility_id", "f.name", "LEFT JOIN facilities f ON f.id = k.key"),
        }[report]
        rows = await db.fetchall(
            f"WITH vv AS (SELECT v.{key} AS key, COUNT(*) AS views FROM article_views v WHERE {views_where}"
            f" GROUP BY v.{key}), rr AS (SELECT r.{key} AS key, SUM(r.seconds) AS seconds FROM reading_time r"
            f" WHERE {read_where} GROUP BY r.{key}), k AS (SELECT key FROM vv UNION SELECT key FROM rr)"
            f" SELECT k.key AS id, {label} AS name, COALESCE(vv.views, 0) AS views,"
            f" COALESCE(rr.seconds, 0) AS seconds FROM k LEFT JOIN vv ON vv.key IS k.key"
            f" LEFT JOIN rr ON rr.key IS k.key {join} ORDER BY seconds DESC, views DESC, id",
            (lo, hi, *sp, lo, hi, *sp))
    return [dict(r) for r in rows]


@routes.get("/api/v1/reports/usage")
@roles(*ADMIN_ROLES, facility_scoped=True)
@spec(query={"format": {"enum": ["json", "csv"]}, "report": {"enum": list(REPORTS)}, "from": _DATE, "to": _DATE,
             "facility_id": {"type": "string", "pattern": "^[0-9]{1,12}$"}},
      response=USAGE_SCHEMA, alternatives={"text/csv": STR})
async def usage_report(request: web.Request) -> web.StreamResponse:
    """All reports as JSON, or one (report=...) as CSV with format=csv."""
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise bad_request("invalid_parameter", "format must be json or csv", {"parameter": "format"})
    if fmt == "json":
        return ok({name: await usage(request, name) for name in REPORTS})
    report = request.query.get("report", "top_articles")
    if report not in REPORTS:
        raise bad_request("invalid_parameter", f"report must be one of {', '.join(REPORTS)}",
                          {"parameter": "report"})
    rows = await usage(request, report)
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0].keys()))
        writer.writeheader()
        for row in rows:
            # Cells starting with = + - @ would run as formulas in a spreadsheet.
            writer.writerow({k: f"'{v}" if isinstance(v, str) and v[:1] in "=+-@" else v for k, v in row.items()})
    return web.Response(text=out.getvalue(), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="usage-{report}.csv"'})

