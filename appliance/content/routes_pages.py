"""The reader page (it frames archive content) and the learner pages' local assets.

The book list and search results are server-rendered in appliance.content.pages.
"""

from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from appliance.content.keys import CONTENT
from appliance.content.origin import content_origin
from appliance.core.errors import unauthorized
from appliance.web import templating
from appliance.web.policy import maybe_principal, public

PAGES = Path(__file__).resolve().parent.parent / "web" / "learner"
STATIC = PAGES / "static"
routes = web.RouteTableDef()
HEADERS = {"Cache-Control": "no-cache", "X-Frame-Options": "SAMEORIGIN",
           "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                                      "script-src 'self'; frame-ancestors 'self'"}


async def _may_read(request: web.Request) -> None:
    """Signed-in users, or anyone where the facility allows anonymous browsing."""
    service = request.app[CONTENT]
    await service.refresh()
    if maybe_principal(request) is None and not service.directory.anonymous_allowed:
        raise unauthorized()
    # A learner is here: start this worker's search processes now, so the first search does not wait.
    service.pools.warm()


@routes.get("/library/read/{book}/{path:.*}")
@public
async def reader_page(request: web.Request) -> web.Response:
    """The reader wrapper; the article loads in its frame from the content origin, the only origin it may frame."""
    headers = dict(HEADERS)
    headers["Content-Security-Policy"] += f"; frame-src {content_origin(request)}"
    await _may_read(request)
    book = request.match_info["book"]
    # the toolbar names the book (a book the caller may not see gets its slug only; the frame says why)
    shown = {lib.slug: lib for lib in request.app[CONTENT].directory.visible(maybe_principal(request))}
    title = (shown[book].title or book) if book in shown else book
    return templating.render(request, "content/reader.html", {
        "book": book, "book_title": title, "book_home": f"/library/read/{quote(book, safe='')}/"}, headers=headers)


def add_static(app: web.Application) -> None:
    """Local scripts and styles of the learner pages (static routes are public by design)."""
    app.router.add_static("/static/learner", STATIC, append_version=False)
