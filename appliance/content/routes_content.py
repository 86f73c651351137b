"""Serving archive entries: /content/{book}/{path}, the main page, /random (on the content origin only), and
the .zim download. On the app origin the old /content and /random addresses lead to the reader page, which
frames the content origin: no archive bytes are ever served from the app origin.
"""

import os
from urllib.parse import quote

from aiohttp import web

from appliance.content import metrics
from appliance.content.directory import Library
from appliance.content.hotcache import HTML_CACHE, PRIVATE_IMMUTABLE, HotEntry
from appliance.content.httpcache import (
    IMMUTABLE,
    RangeKind,
    accepts_gzip,
    compress,
    etag,
    not_modified,
    parse_range,
)
from appliance.content.keys import CONTENT
from appliance.content.reader import Outcome, main_path, random_path, resolve
from appliance.content.service import ContentService
from appliance.content.tracking import View
from appliance.core.blocking import run_blocking
from appliance.core.errors import ApiError, bad_request, forbidden, not_found
from appliance.keys import CLOCK, TASKS
from appliance.web.openapi import spec
from appliance.web.policy import public

MAX_PATH_BYTES = 4096
_OK = metrics.SERVED_OK
_BLOCKED = metrics.ENTRIES_SERVED.labels("blocked")
routes = web.RouteTableDef()  # the app origin
site_routes = web.RouteTableDef()  # the content origin


def content_url(slug: str, path: str) -> str:
    """URL of an entry, percent-encoding what a path segment cannot hold (?, #, &, spaces, non-ASCII)."""
    return f"/content/{slug}/{quote(path, safe='/')}"


def _check_path(path: str) -> None:
    """Paths over 4 KB or with NUL are refused before touching the archive."""
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise ApiError(414, "path_too_long", f"article path is longer than {MAX_PATH_BYTES} bytes")
    if "\x00" in path:
        raise bad_request("invalid_path", "article path contains a NUL character")


def reader_url(slug: str, path: str = "") -> str:
    """The reader page (app origin) of an entry."""
    return f"/library/read/{quote(slug, safe='')}/{quote(path, safe='/')}"


@routes.get("/content/{book}")
@routes.get("/content/{book}/")
@routes.get("/content/{book}/{path:.+}")
@public
async def old_content_url(request: web.Request) -> web.StreamResponse:
    """Old links to an entry on the app origin open it in the reader (which frames the content origin)."""
    path = request.match_info.get("path", "")
    _check_path(path)
    raise web.HTTPFound(reader_url(request.match_info["book"], path))


@routes.get("/random")
@public
async def old_random(request: web.Request) -> web.StreamResponse:
    """kiwix-serve's /random?content= on the app origin: the reader, showing a random article."""
    slug = request.query.get("content", "")
    if not slug:
        raise bad_request("invalid_parameter", "content (the book name) is required", {"parameter": "content"})
    raise web.HTTPFound(reader_url(slug) + "?random")


@site_routes.get("/content/{book}")
@public  # access is decided per library in ContentService.readable (anonymous browsing per facility)
async def book_root(request: web.Request) -> web.StreamResponse:
    """The bare book URL goes to its main page."""
    raise web.HTTPFound(f"/content/{request.match_info['book']}/")


@site_routes.get("/content/{book}/")
@public
async def main_page(request: web.Request) -> web.StreamResponse:
    """Redirect to the archive's main page (404 when it has none)."""
    service = request.app[CONTENT]
    _p, lib = await service.readable(request, request.match_info["book"])
    archive = await service.directory.archive(lib)
    target = await run_blocking("zim", main_path, archive)
    if target is None:
        raise not_found(f"library {lib.slug!r} has no main page")
    raise web.HTTPFound(content_url(lib.slug, target))


@site_routes.get("/content/{book}/{path:.+}")
@public
async def entry(request: web.Request) -> web.StreamResponse:
    """The bytes of one entry with caching, Range and gzip; ZIM redirects become HTTP redirects.

    Access is checked first on every request; then a hot entry is answered from this process's memory
    (no thread hop, headers and gzip body made once), and only a miss reads the archive in the zim pool.
    """
    service = request.app[CONTENT]
    path = request.match_info["path"]
    _check_path(path)
    p, lib = await service.readable(request, request.match_info["book"])
    blocklist = lib.blocklist
    if blocklist.blocks(path):
        _BLOCKED.inc()
        raise forbidden("this article is blocked")
    hot = service.hot.get(lib.uuid, path)
    if hot is None:
        hot = await _load(service, lib, path)
    if hot.path != path and blocklist.blocks(hot.path):
        raise forbidden("this article is blocked")
    headers = request.headers
    ranged = "Range" in headers
    if hot.html and not ranged and request.method == "GET":
        record_view(request.app, service, p, lib.id, hot.path, hot.title)
    packed = None
    if hot.zippable and not ranged and accepts_gzip(headers.get("Accept-Encoding")):
        packed = hot.packed or service.gzip.lookup(lib.uuid, hot.index)
        if packed is None:
            # zlib releases the GIL, so compressing in a thread really runs beside the event loop.
            packed = await run_blocking("gzip", compress, hot.body)
            if not service.hot.attach_gzip(path, hot, packed):
                service.gzip.store(lib.uuid, hot.index, packed)
    if not ranged and "If-None-Match" not in headers:
        _OK.count += 1  # the common case: headers made once per entry
        return web.Response(body=packed if packed is not None else hot.body,
                            headers=hot.response_headers(packed is not None, p is not None))
    return _respond(request, hot, packed, p is not None)


async def _load(service: ContentService, lib: Library, path: str) -> HotEntry:
    """Read an entry from the archive (zim pool) and keep it hot; misses and redirects raise."""
    archive = service.directory.cached_archive(lib)
    if archive is None:
        archive = await service.directory.archive(lib)
    found = await run_blocking("zim", resolve, archive, path)
    if found.outcome is Outcome.MISSING:
        metrics.ENTRIES_SERVED.labels("missing").inc()
        raise not_found(f"no entry {path[:200]!r} in {lib.slug!r}")
    if found.outcome is Outcome.REDIRECT:
        metrics.ENTRIES_SERVED.labels("redirect").inc()
        raise web.HTTPFound(content_url(lib.slug, found.path))
    hot = HotEntry.make(lib.uuid, found.index, found.path, found.title, found.mimetype, found.content)
    service.hot.put(path, hot)
    return hot


def record_view(app: web.Application, service: ContentService, p: object, library_id: int, path: str,
                title: str) -> None:
    """Queue a view; a full batch is flushed by a one-off task, never on this request."""
    user_id = getattr(p, "user_id", None)
    facility_id = getattr(p, "facility_id", None) if p is not None else service.directory.anonymous_facility()
    view = View(user_id, facility_id, library_id, path, title, app[CLOCK].now())
    if service.recorder.add_view(view):
        tasks = app[TASKS]
        if "content-views-now" not in tasks.names():
            tasks.spawn("content-views-now", service.recorder.flush, restart=False)


def _respond(request: web.Request, hot: HotEntry, packed: bytes | None, signed_in: bool) -> web.Response:
    """304, 206, 416 or 200 (gzipped when worthwhile and accepted)."""
    uuid, index, body = hot.uuid, hot.index, hot.body
    cache = HTML_CACHE if hot.html else PRIVATE_IMMUTABLE if signed_in else IMMUTABLE
    headers = {"Cache-Control": cache, "Accept-Ranges": "bytes"}  # nosniff and CSP: origin._content_headers
    if hot.zippable:
        headers["Vary"] = "Accept-Encoding"
    if not_modified(request.headers.get("If-None-Match"), uuid, index):
        headers["ETag"] = etag(uuid, index)
        metrics.ENTRIES_SERVED.labels("not_modified").inc()
        return web.Response(status=304, headers=headers)
    rng = parse_range(request.headers.get("Range"), len(body))
    if rng.kind is RangeKind.UNSATISFIABLE:
        headers["Content-Range"] = f"bytes */{len(body)}"
        return web.Response(status=416, headers=headers)
    if rng.kind is RangeKind.PARTIAL:
        headers["ETag"] = etag(uuid, index)
        headers["Content-Range"] = f"bytes {rng.start}-{rng.end}/{len(body)}"
        metrics.ENTRIES_SERVED.labels("partial").inc()
        return web.Response(status=206, body=body[rng.start:rng.end + 1], headers=headers,
                            content_type=hot.content_type)
    _OK.count += 1
    return web.Response(body=packed if packed is not None else body,
                        headers=hot.response_headers(packed is not None, signed_in))


@site_routes.get("/random")
@public
async def random_article(request: web.Request) -> web.StreamResponse:
    """Redirect to a random article of ?content={book} that is not blocked."""
    service = request.app[CONTENT]
    slug = request.query.get("content", "")
    if not slug:
        raise bad_request("invalid_parameter", "content (the book name) is required", {"parameter": "content"})
    _p, lib = await service.readable(request, slug)
    archive = await service.directory.archive(lib)
    allowed = lib.blocklist
    target = await run_blocking("zim", random_path, archive, lambda path: not allowed.blocks(path))
    if target is None:
        raise not_found(f"library {slug!r} has no articles to pick from")
    raise web.HTTPFound(content_url(lib.slug, target))


@routes.get("/catalog/v2/download/{uuid}/{name}")
@public
@spec(content_type="application/x-zim")
async def download(request: web.Request) -> web.StreamResponse:
    """The .zim file itself (Range-capable) so another appliance or a Kiwix app can mirror it."""
    service = request.app[CONTENT]
    await service.refresh()
    lib = service.directory.by_uuid.get(request.match_info["uuid"])
    if lib is None:
        raise not_found("no such book")
    _p, lib = await service.readable(request, lib.slug)
    # A download, never a page: the browser saves it (attachment, nosniff) and no archive script runs here.
    name = quote(os.path.basename(str(lib.path)))
    return web.FileResponse(lib.path, headers={"Content-Type": "application/x-zim",
                                               "Content-Disposition": f"attachment; filename*=UTF-8''{name}",
                                               "X-Content-Type-Options": "nosniff",
                                               "Cache-Control": "private, max-age=86400"})
