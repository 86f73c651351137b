"""OPDS catalog (Kiwix-compatible) of the libraries the caller may see, and the upstream catalog browser."""

from typing import Any

import aiohttp
from aiohttp import web

from appliance.content import opds
from appliance.content.keys import CONTENT
from appliance.content.origin import content_origin
from appliance.content.service import ContentService
from appliance.content.upstream import MAX_FEED_BYTES, UpstreamError, parse_feed
from appliance.core import egress
from appliance.core.errors import ApiError, bad_request, not_found
from appliance.keys import CONFIG, DB, HTTP_CLIENT
from appliance.web.openapi import INT, STR, arr, nullable, obj, spec, text
from appliance.web.policy import Role, maybe_principal, public, roles
from appliance.web.responses import ok

ATOM_TYPE = "application/atom+xml"
FILTERS = ("lang", "category", "tag", "notag", "q", "name", "maxsize")
ENTRIES_QUERY = {**{name: text(200) for name in FILTERS},
                 "start": {"type": "integer", "minimum": 0, "maximum": 10_000_000},
                 "count": {"type": "integer", "minimum": -1, "maximum": 10_000}}
routes = web.RouteTableDef()


async def _books(request: web.Request, service: ContentService) -> list[opds.Book]:
    """Ready libraries the caller may see (anonymous: only where anonymous browsing is on)."""
    await service.refresh()
    visible = {lib.id for lib in service.directory.visible(maybe_principal(request))}
    if not visible:
        return []
    rows = await request.app[DB].fetchall(
        "SELECT id, uuid, slug, name, title, description, language, creator, publisher, date, tags, category,"
        " flavour, article_count, media_count, size, updated_at, illustration IS NOT NULL AS has_ill, path"
        " FROM libraries WHERE state = 'ready'")
    return [opds.Book(
        uuid=r["uuid"], slug=r["slug"], name=r["name"], title=r["title"], description=r["description"],
        language=r["language"], creator=r["creator"], publisher=r["publisher"], date=r["date"], tags=r["tags"],
        category=r["category"], flavour=r["flavour"], article_count=r["article_count"],
        media_count=r["media_count"], size=r["size"], updated=r["updated_at"], has_illustration=bool(r["has_ill"]),
        file_name=r["path"].rsplit("/", 1)[-1]) for r in rows if r["id"] in visible]


def _atom(body: bytes, kind: str = "acquisition") -> web.Response:
    return web.Response(body=body, headers={
        "Content-Type": f"{ATOM_TYPE};profile=opds-catalog;kind={kind};charset=utf-8",
        "Cache-Control": "private, no-cache"})


def _updated(books: list[opds.Book]) -> str:
    return max((b.updated for b in books), default="2026-01-01T00:00:00.000Z")


def _int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name, "")
    if not raw:
        return default
    if not raw.lstrip("-").isdigit() or len(raw) > 9 or not low <= int(raw) <= high:
        raise bad_request("invalid_parameter", f"{name} must be an integer from {low} to {high}",
                          {"parameter": name})
    return int(raw)


@routes.get("/catalog/v2/root.xml")
@public
@spec(content_type=ATOM_TYPE)
async def root(request: web.Request) -> web.Response:
    """Navigation root."""
    books = await _books(request, request.app[CONTENT])
    return _atom(opds.root_feed(_updated(books)), "navigation")


async def _entries(request: web.Request, partial: bool) -> web.Response:
    books = await _books(request, request.app[CONTENT])
    filters = {k: request.query[k][:200] for k in FILTERS if request.query.get(k)}
    chosen = opds.filter_books(books, filters)
    start = _int(request, "start", 0, 0, 10_000_000)
    count = _int(request, "count", 10, -1, 10_000)  # Kiwix: -1 = all, 0 = only the total
    page = chosen[start:] if count < 0 else chosen[start:start + count]
    shown = len(page) if count < 0 else count
    return _atom(opds.entries_feed(page, total=len(chosen), start=start, count=shown, updated=_updated(books),
                                   query={**filters, **({"start": str(start)} if start else {})}, partial=partial,
                                   content_base=content_origin(request)))


@routes.get("/catalog/v2/entries")
@public
@spec(query=ENTRIES_QUERY, content_type=ATOM_TYPE)
async def entries(request: web.Request) -> web.Response:
    """Filtered, paginated acquisition feed."""
    return await _entries(request, partial=False)


@routes.get("/catalog/v2/partial_entries")
@public
@spec(query=ENTRIES_QUERY, content_type=ATOM_TYPE)
async def partial_entries(request: web.Request) -> web.Response:
    """Same, with short entries."""
    return await _entries(request, partial=True)


@routes.get("/catalog/v2/entry/{uuid}")
@public
@spec(content_type=ATOM_TYPE)
async def entry(request: web.Request) -> web.Response:
    """One book."""
    for book in await _books(request, request.app[CONTENT]):
        if book.uuid == request.match_info["uuid"]:
            return web.Response(body=opds.single_entry(book, content_origin(request)), headers={
                "Content-Type": f"{ATOM_TYPE};type=entry;profile=opds-catalog;charset=utf-8"})
    raise not_found("no such book")


@routes.get("/catalog/v2/illustration/{uuid}")
@routes.get("/catalog/v2/illustration/{uuid}/")
@public
@spec(query={"size": {"type": "string", "maxLength": 10}}, content_type="image/png")
async def illustration(request: web.Request) -> web.Response:
    """The 48x48 PNG icon (the only size stored; others are 404 as in Kiwix)."""
    if request.query.get("size", "48") != "48":
        raise not_found("no illustration of that size")
    uuid = request.match_info["uuid"]
    if uuid not in {b.uuid for b in await _books(request, request.app[CONTENT])}:
        raise not_found("no such book")
    png = await request.app[DB].fetchval("SELECT illustration FROM libraries WHERE uuid = ?", (uuid,))
    if png is None:
        raise not_found("this book has no illustration")
    return web.Response(body=png, content_type="image/png", headers={"Cache-Control": "private, max-age=86400",
                                                                     "X-Content-Type-Options": "nosniff"})


async def _facet(request: web.Request, kind: str) -> web.Response:
    books = await _books(request, request.app[CONTENT])
    counts: dict[str, int] = {}
    for book in books:
        for value in (book.language.split(",") if kind == "languages" else [book.category]):
            if value:
                counts[value] = counts.get(value, 0) + 1
    return _atom(opds.facet_feed(kind, sorted(counts.items()), _updated(books)), "navigation")


@routes.get("/catalog/v2/languages")
@public
@spec(content_type=ATOM_TYPE)
async def languages(request: web.Request) -> web.Response:
    """Languages with book counts."""
    return await _facet(request, "languages")


@routes.get("/catalog/v2/categories")
@public
@spec(content_type=ATOM_TYPE)
async def categories(request: web.Request) -> web.Response:
    """Categories with book counts."""
    return await _facet(request, "categories")


@routes.get("/catalog/v2/searchdescription.xml")
@public
@spec(content_type="application/opensearchdescription+xml")
async def search_description(request: web.Request) -> web.Response:
    """OpenSearch description of the catalog."""
    return web.Response(body=opds.search_description(), content_type="application/opensearchdescription+xml")


@routes.get("/api/v1/catalog/upstream")
@roles(Role.SYSTEM_ADMIN)
@spec(query={"lang": text(200), "q": text(200), "category": text(200), "name": text(200),
             "start": {"type": "integer", "minimum": 0, "maximum": 1_000_000},
             "count": {"type": "integer", "minimum": 1, "maximum": 100}},
      response=arr(obj("id", "name", "title", id=STR, name=STR, title=STR, summary=STR, language=STR,
                       category=STR, tags=STR, size=nullable(INT), download_url=nullable(STR), updated=STR)))
async def upstream(request: web.Request) -> web.Response:
    """Browse the upstream Kiwix catalog (lang, q, start, count); says plainly when it cannot be reached."""
    total, books, base, params = await browse_upstream(request)
    return ok([b.as_dict() for b in books], meta={"total": total, "source": base, **params})


async def browse_upstream(request: web.Request) -> tuple[int, list[Any], str, dict[str, str]]:
    """One page of the upstream catalog for the request's lang, q, category, name, start and count."""
    settings = request.app[CONFIG].content
    base = settings.upstream_catalog_url.rstrip("/")
    params = {"start": str(_int(request, "start", 0, 0, 1_000_000)),
              "count": str(_int(request, "count", 20, 1, 100))}
    for key in ("lang", "q", "category", "name"):
        if request.query.get(key):
            params[key] = request.query[key][:200]
    url = f"{base}/catalog/v2/entries"
    try:
        async with request.app[HTTP_CLIENT].get(
                url, params=params, timeout=aiohttp.ClientTimeout(total=settings.upstream_timeout_s)) as resp:
            if resp.status != 200:
                raise UpstreamError(f"upstream catalog answered HTTP {resp.status}")
            data = await resp.content.read(MAX_FEED_BYTES)
        total, books = parse_feed(data, base)
    except (aiohttp.ClientError, TimeoutError, UpstreamError) as exc:
        reason = "refused by egress policy" if egress.refused(exc) else (str(exc) or type(exc).__name__)
        raise ApiError(503, "upstream_unreachable", f"the upstream catalog at {base} cannot be reached right now",
                       {"reason": reason[:300], "url": base}, headers={"Retry-After": "60"}) from None
    return total, list(books), base, params
