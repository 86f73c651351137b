"""Library pages rendered on the server (they work with JavaScript off): the book list, search results,
the learner home's library sections and the reading series of the staff dashboard chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from appliance.content import admin_pages, report_pages
from appliance.content.keys import CONTENT
from appliance.content.routes_search import _books, _query, run_search
from appliance.core.errors import ApiError, unauthorized
from appliance.keys import DB
from appliance.web import templating
from appliance.web.i18n import N_
from appliance.web.messages import sentence
from appliance.web.policy import Principal, Role, maybe_principal, public
from appliance.web.responses import Page, page_params
from appliance.web.shell.pages import ACTIVITY, ActivitySource

TEMPLATES = Path(__file__).resolve().parent / "templates"
COLUMNS = "id, slug, title, description, language, category, article_count, size"
routes = web.RouteTableDef()


def reader_url(slug: str, path: str = "") -> str:
    """The reader page of a book (its home when path is empty)."""
    return f"/library/read/{slug}/{quote(path, safe='/')}"


async def _visible_rows(request: web.Request, p: Principal | None) -> list[Any]:
    service = request.app[CONTENT]
    await service.refresh()
    if p is None and not service.directory.anonymous_allowed:
        raise unauthorized()
    ids = [lib.id for lib in service.directory.visible(p)]
    return await request.app[DB].fetchall(
        f"SELECT {COLUMNS} FROM libraries WHERE id IN (SELECT value FROM json_each(?)) "  # noqa: S608
        "ORDER BY title COLLATE NOCASE", (json.dumps(ids),))


async def _featured_ids(request: web.Request, p: Principal | None) -> set[int]:
    if p is None:
        return set()
    rows = await request.app[DB].fetchall("SELECT library_id FROM library_featured WHERE facility_id = ?",
                                          (p.facility_id,))
    return {r["library_id"] for r in rows}


@routes.get("/library")
@public
async def library_page(request: web.Request) -> web.Response:
    """Every book this person may read, with language and category filters."""
    p = maybe_principal(request)
    rows = await _visible_rows(request, p)
    request.app[CONTENT].pools.warm()  # a learner is here: start this worker's search processes now
    languages = sorted({r["language"] for r in rows if r["language"]})
    categories = sorted({r["category"] for r in rows if r["category"]})
    language, category = request.query.get("language", ""), request.query.get("category", "")
    shown = [r for r in rows if (not language or r["language"] == language)
             and (not category or r["category"] == category)]
    featured = await _featured_ids(request, p)
    books = [{**dict(r), "featured": r["id"] in featured, "url": reader_url(r["slug"])} for r in shown]
    books.sort(key=lambda b: not b["featured"])
    return templating.render(request, "content/library.html", {
        "books": books, "total": len(rows), "languages": languages, "categories": categories,
        "language": language, "category": category})


@routes.get("/library/search")
@public
async def search_page(request: web.Request) -> web.Response:
    """Search results with book titles and highlighted matches; the scope is shown and can be widened."""
    service = request.app[CONTENT]
    p = maybe_principal(request)
    rows = await _visible_rows(request, p)
    titles = {r["slug"]: r["title"] or r["slug"] for r in rows}
    q = request.query.get("q", "").strip()
    books_param = request.query.get("books", "")
    values: dict[str, Any] = {"q": q, "books_param": books_param, "results": [], "total": 0, "error": "",
                              "scope": [], "prev_url": "", "next_url": "", "searched": bool(q)}
    if not q:
        return templating.render(request, "content/search.html", values)
    try:
        query = _query(request, service, "q")
        page = page_params(request, default_per_page=10, max_per_page=25)
        books = await _books(request, service, books_param)
        out = await run_search(request, service, books, query, page)
    except ApiError as exc:
        if exc.status == 401:
            raise
        values["error"] = sentence(exc.code, exc.message)
        return templating.render(request, "content/search.html", values, status=exc.status)
    values["scope"] = [titles.get(b.slug, b.slug) for b in books] if books_param else []
    values["total"] = out.total
    values["results"] = [{"title": h.title or h.path, "book": titles.get(h.book, h.book), "snippet": h.snippet,
                          "url": reader_url(h.book, h.path)} for h in out.hits]
    values.update(_pager(q, books_param, page, out.total))
    values["wide_url"] = "/library/search?" + urlencode({"q": q})
    return templating.render(request, "content/search.html", values)


def _pager(q: str, books: str, page: Page, total: int) -> dict[str, str]:
    def url(n: int) -> str:
        params = {"q": q, "page": str(n)}
        if books:
            params["books"] = books
        return "/library/search?" + urlencode(params)

    return {"prev_url": url(page.page - 1) if page.page > 1 else "",
            "next_url": url(page.page + 1) if page.offset + page.per_page < total else ""}


async def home_libraries(request: web.Request, p: Principal) -> templating.Section | None:
    """Featured books first, then the others this person may read (a few), and "continue reading"."""
    rows = await _visible_rows(request, p)
    featured = await _featured_ids(request, p)
    books = [{"title": r["title"] or r["slug"], "description": r["description"], "url": reader_url(r["slug"]),
              "featured": r["id"] in featured} for r in rows]
    books.sort(key=lambda b: not b["featured"])
    visible = {r["id"]: r for r in rows}
    recent = await request.app[DB].fetchall(
        "SELECT library_id, path, title, max(viewed_at) AS at FROM article_views WHERE user_id = ? "
        "GROUP BY library_id, path ORDER BY at DESC LIMIT 20", (p.user_id,))
    reading = [{"title": r["title"] or r["path"], "book": visible[r["library_id"]]["title"],
                "url": reader_url(visible[r["library_id"]]["slug"], r["path"])}
               for r in recent if r["library_id"] in visible][:5]
    return templating.Section(10, "content/home.html", {"books": books[:6], "more": len(books) > 6,
                                                        "reading": reading})


async def reading_minutes(app: web.Application, p: Principal, since: str) -> dict[str, float]:
    """Minutes of reading per day in the caller's facilities (all of them for system admins)."""
    scope, params = ("", []) if p.role is Role.SYSTEM_ADMIN else (
        " AND facility_id IN (SELECT value FROM json_each(?))", [json.dumps(sorted(p.facility_ids))])
    rows = await app[DB].fetchall(
        f"SELECT day, sum(seconds) AS s FROM reading_time WHERE day >= ?{scope} GROUP BY day",  # noqa: S608
        [since, *params])
    return {r["day"]: r["s"] / 60 for r in rows}


def setup(app: web.Application) -> None:
    """Register the library pages, templates, navigation, home section and chart series."""
    app.router.add_routes(routes)
    templating.add_templates(app, TEMPLATES)
    templating.add_nav(app, templating.NavItem(10, "/library", N_("Library")))
    templating.add_home_section(app, home_libraries)
    app[ACTIVITY].append(ActivitySource("reading", N_("Reading"), reading_minutes))
    admin_pages.setup(app)
    report_pages.setup(app)
