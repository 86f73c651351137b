"""Full-text search and title suggestions across the caller's visible libraries, behind bounded pools."""

import time

from aiohttp import web

from appliance.content import metrics, searchworker
from appliance.content.keys import CONTENT
from appliance.content.routes_content import content_url
from appliance.content.searchpool import QueryTimeout, Saturated
from appliance.content.searchworker import BookRef
from appliance.content.service import ContentService
from appliance.core.errors import bad_request, not_found, unauthorized, unavailable
from appliance.web.openapi import STR, arr, nullable, obj, spec, text
from appliance.web.policy import maybe_principal, public
from appliance.web.responses import Page, ok, page_params

MAX_BOOKS_PARAM = 2000
routes = web.RouteTableDef()


def _query(request: web.Request, service: ContentService, name: str) -> str:
    """The query text: required, bounded, no control characters."""
    q = request.query.get(name, "").strip()
    if not q:
        raise bad_request("invalid_parameter", f"{name} is required", {"parameter": name})
    limit = service.settings.max_query_chars
    if len(q) > limit:
        raise bad_request("query_too_long", f"{name} is longer than {limit} characters",
                          {"parameter": name, "max": limit, "length": len(q)})
    if any(ord(c) < 32 for c in q):
        raise bad_request("invalid_parameter", f"{name} contains control characters", {"parameter": name})
    return q


async def _books(request: web.Request, service: ContentService, names: str) -> list[BookRef]:
    """The visible, ready libraries named (comma list) or all visible ones; unknown names are a 400."""
    await service.refresh()
    p = maybe_principal(request)
    if p is None and not service.directory.anonymous_allowed:
        raise unauthorized()
    visible = {lib.slug: lib for lib in service.directory.visible(p)}
    if names:
        if len(names) > MAX_BOOKS_PARAM:
            raise bad_request("invalid_parameter", "books is too long", {"parameter": "books"})
        wanted = [n.strip() for n in names.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in visible]
        if unknown:
            raise bad_request("unknown_books", "some books do not exist or are not visible to you",
                              {"parameter": "books", "unknown": unknown[:20]})
        chosen = [visible[n] for n in wanted]
    else:
        chosen = sorted(visible.values(), key=lambda lib: lib.slug)
    return [BookRef(lib.slug, lib.path, lib.uuid, lib.blocklist.regex) for lib in chosen]


def _busy(exc: Saturated | QueryTimeout, kind: str) -> Exception:
    """503 with Retry-After: the teacher sees "busy, try again", and article reads carry on."""
    metrics.QUERY_REJECTED.labels(kind).inc()
    retry = exc.retry_after if isinstance(exc, Saturated) else 2  # a timed-out query: its process is busy
    return unavailable(f"{kind} is busy right now; try again in a moment", retry, code=f"{kind}_busy")


@routes.get("/api/v1/search")
@public  # signed-in users, or anonymous visitors where the facility allows it (checked in _books)
@spec(query={"q": text(200, 1), "books": text(MAX_BOOKS_PARAM), "page": {"type": "integer", "minimum": 1},
             "per_page": {"type": "integer", "minimum": 1, "maximum": 25}},
      response=arr(obj("book", "path", "title", "match", "url", book=STR, path=STR, title=STR,
                       snippet=nullable(STR), match=STR, url=STR)))
async def search(request: web.Request) -> web.Response:
    """Ranked results with book, path, title and a snippet (snippets only for this page, at most 25)."""
    service = request.app[CONTENT]
    q = _query(request, service, "q")
    page = page_params(request, default_per_page=10, max_per_page=25)
    books = await _books(request, service, request.query.get("books", ""))
    out = await run_search(request, service, books, q, page)
    items = [{"book": h.book, "path": h.path, "title": h.title, "snippet": h.snippet, "match": h.match,
              "url": content_url(h.book, h.path)} for h in out.hits]
    return ok(items, meta={"page": page.page, "per_page": page.per_page, "total": out.total,
                           "title_only_books": out.title_only_books,
                           "snippets_truncated": out.snippets_truncated, "query": q})


async def run_search(request: web.Request, service: ContentService, books: list[BookRef], q: str,
                     page: Page) -> searchworker.SearchOutcome:
    """One page of ranked results from the search processes, through the result cache (API and page share it)."""
    if page.offset + page.per_page > searchworker.MAX_SCAN:
        raise bad_request("invalid_parameter", f"results beyond the first {searchworker.MAX_SCAN} are not "
                          "available; refine the query", {"parameter": "page"})
    started = time.perf_counter()
    key = service.search_cache.key(books, q, page.offset, page.per_page)
    out = service.search_cache.get(key)
    if out is None:
        async def load() -> searchworker.SearchOutcome:
            found = await service.pools.search.run(
                searchworker.search, books, q, page.offset, page.per_page,
                service.settings.snippet_budget_ms / 1000, service.settings.max_snippets)
            if not found.snippets_truncated:
                # A page cut short by the snippet budget is not cached: the next ask gets another chance.
                service.search_cache.put(key, found, request.query_string)
            return found

        try:
            # The same search asked again while it runs (a class typing what the teacher said) waits for
            # that one instead of taking another place in the pool.
            out = await service.search_flight.run(key, load)
        except (Saturated, QueryTimeout) as exc:
            raise _busy(exc, "search") from None
    metrics.QUERY_LATENCY.labels("search").observe(time.perf_counter() - started)
    return out


@routes.get("/api/v1/suggest")
@public
@spec(query={"q": text(200, 1), "book": text(200, 1)},
      response=arr(obj("path", "title", "book", "url", path=STR, title=STR, book=STR, url=STR)))
async def suggest(request: web.Request) -> web.Response:
    """Up to 10 title suggestions from one book."""
    service = request.app[CONTENT]
    q = _query(request, service, "q")
    slug = request.query.get("book", "")
    if not slug:
        raise bad_request("invalid_parameter", "book is required", {"parameter": "book"})
    books = await _books(request, service, slug)
    if not books:
        raise not_found("no such book")
    got = await run_suggest(request, service, books[0], q)
    return ok([{**s, "book": books[0].slug, "url": content_url(books[0].slug, s["path"])} for s in got])


async def run_suggest(request: web.Request, service: ContentService, book: BookRef, q: str) -> list[dict[str, str]]:
    """Suggestions from the suggest processes, through their own cache: a class typing the same word asks
    the same prefixes, so most keystrokes after the first learner's are answered without a process."""
    started = time.perf_counter()
    key = service.suggest_cache.suggest_key(book, q, 10)
    got: list[dict[str, str]] | None = service.suggest_cache.get(key)
    if got is None:
        async def load() -> list[dict[str, str]]:
            found: list[dict[str, str]] = await service.pools.suggest.run(searchworker.suggest, book, q, 10)
            service.suggest_cache.put(key, found, request.query_string)
            return found

        try:
            # The same prefix asked while it runs waits for that run instead of taking a place in the queue.
            got = await service.suggest_flight.run(key, load)
        except (Saturated, QueryTimeout) as exc:
            raise _busy(exc, "suggest") from None
    metrics.QUERY_LATENCY.labels("suggest").observe(time.perf_counter() - started)
    return got


async def admission_guard(request: web.Request) -> None:
    """Refuse a flood before any session lookup, so it costs almost nothing: while a class's queue is full
    (by count or expected wait), only requests its cache will probably answer go on."""
    kind = _GUARDED.get(request.path)
    if kind is not None:
        service = request.app[CONTENT]
        pool, cache = ((service.pools.search, service.search_cache) if kind == "search"
                       else (service.pools.suggest, service.suggest_cache))
        if pool.full and request.query_string not in cache.recent:
            pool.rejected += 1
            raise _busy(Saturated(pool.klass, pool.retry_after()), kind)


_GUARDED = {"/api/v1/search": "search", "/api/v1/suggest": "suggest"}
