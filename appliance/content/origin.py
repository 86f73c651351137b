"""The content origin: a second listener serving only archive entries, trusted with a content pass, never a session.

Scripts inside a ZIM archive run on this origin. It answers /content/... and /random (the archive), plus
the frame page that hosts them inside the reader; every other path is a 404, so nothing of the API is
reachable here, and the app's session cookie, which the browser may send along (cookies ignore ports),
is never read. Its responses forbid framing by anything but the app origin and connecting anywhere but
itself.
"""

from __future__ import annotations

import functools
import html
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web
from yarl import URL

from appliance.content.keys import CONTENT, CONTENT_SITE, MAIN_APP
from appliance.content.passes import COOKIE_PASS_TTL_S, URL_PASS_TTL_S, ContentPass, PassKind
from appliance.core.blocking import run_blocking
from appliance.core.errors import ApiError, unauthorized
from appliance.keys import AUTHENTICATORS, CLOCK, CONFIG, MIDDLEWARES, ROLE, SESSION_PRINCIPAL, TASKS
from appliance.web import middlewares as mw
from appliance.web.openapi import STR, obj, spec, text
from appliance.web.policy import AuthVia, Principal, maybe_principal, public
from appliance.web.sites import ExtraSite, port_after

PASS_COOKIE = "appliance_content"  # noqa: S105 - a cookie name
PASS_KEY = web.RequestKey("content_pass", ContentPass)
FRAME_DIR = Path(__file__).resolve().parent / "frame"
# Archives carry their own inline scripts and styles, so those are allowed; what is forbidden is reaching
# any other origin (the app's above all) and being framed by anything but the app.
_CSP = ("default-src 'self' data: blob:; script-src 'self' 'unsafe-inline' 'unsafe-eval' data: blob:; "
        "style-src 'self' 'unsafe-inline' data:; img-src 'self' data: blob:; media-src 'self' data: blob:; "
        "font-src 'self' data:; connect-src 'self'; form-action 'self'; frame-src 'self'; worker-src 'self' blob:; "
        "object-src 'none'; base-uri 'self'; frame-ancestors {ancestors}")
_FRAME_CSP = ("default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; frame-src 'self'; "
              "base-uri 'none'; form-action 'none'; frame-ancestors {ancestors}")
routes = web.RouteTableDef()  # on the content origin
app_routes = web.RouteTableDef()  # on the app origin
_frame_js: list[bytes] = []


# --------------------------------------------------------------------------- building the site

def build_site(main: web.Application) -> ExtraSite:
    """The content origin's application, sharing the main app's content service, tasks and session lookups."""
    from appliance.content import routes_content

    config = main[CONFIG]
    site = web.Application(client_max_size=4096, handler_args={"max_field_size": 16384, "max_line_size": 65536})
    site[MAIN_APP] = main
    site[CONFIG] = config
    site[ROLE] = main[ROLE]
    site[CLOCK] = main[CLOCK]
    site[TASKS] = main[TASKS]
    site[AUTHENTICATORS] = [pass_authenticator]
    site[MIDDLEWARES] = []
    site[mw.GUARDS] = []
    site[mw.INFLIGHT] = mw.InFlight()
    site.middlewares.append(mw.core_middleware)
    site.on_response_prepare.append(mw.add_request_id_header)
    site.on_response_prepare.append(_content_headers)
    site.router.add_routes(routes)
    site.router.add_routes(routes_content.site_routes)
    return ExtraSite("content", site, port_after(config.http.content_port, config.http.port))


@functools.lru_cache(maxsize=256)
def _policy(app_origin: str | None, frame_page: bool) -> str:
    """The CSP for a page framed by app_origin (None: by nobody), formatted once per origin."""
    ancestors = f"'self' {app_origin}" if app_origin is not None else "'none'"
    return (_FRAME_CSP if frame_page else _CSP).format(ancestors=ancestors)


def page_policy(app_origin: str | None) -> str:
    """The CSP of an archive page framed by app_origin (None: by nobody)."""
    return _policy(app_origin, False)


async def _content_headers(request: web.Request, response: web.StreamResponse) -> None:
    """CSP (framed only by the app origin that issued the pass), nosniff, no referrer to other origins."""
    found = request.get(PASS_KEY)
    policy = _policy(found.app_origin if found is not None else None, request.path == "/_frame")
    response.headers["Content-Security-Policy"] = policy
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"


async def pass_authenticator(request: web.Request) -> Principal | None:
    """The reader behind a cookie pass, while the session it names is live; anonymous otherwise."""
    token = cookie_value(request.headers.get("Cookie"))
    if not token:
        return None
    service = request.app[CONTENT]
    found = service.passes.verify(PassKind.COOKIE, token, request.app[CLOCK].now().timestamp())
    if found is None:
        return None
    request[PASS_KEY] = found
    if found.session_id == 0:
        return None
    lookup = request.app[MAIN_APP].get(SESSION_PRINCIPAL)
    if lookup is None:
        return None
    who = await lookup(found.session_id)
    if who is None or who.user_id != found.user_id or who.must_change_password:
        return None  # the session ended: from now on this browser reads only what anyone may
    return who  # type: ignore[no-any-return]


def cookie_value(header: str | None) -> str | None:
    """The pass cookie's value (the last one), without parsing every cookie of the request (a hot path)."""
    if not header or PASS_COOKIE not in header:
        return None
    found = None
    for part in header.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip() == PASS_COOKIE:
            found = value.strip().strip('"')
    return found


# --------------------------------------------------------------------------- the app origin's side

def content_origin(request: web.Request) -> str:
    """The content origin as the browser that made this request should reach it."""
    http = request.app[CONFIG].http
    if http.content_url:
        return http.content_url.rstrip("/")
    site = request.app[CONTENT_SITE]
    host = http.content_host or request.url.host or "localhost"
    return str(URL.build(scheme=request.scheme, host=host, port=site.bound_port)).rstrip("/")


def _app_origin(request: web.Request) -> str:
    """The origin of the page asking (as it says, if that matches the Host it reached us by)."""
    said = request.query.get("origin", "")
    parts = urlsplit(said)
    if parts.scheme in ("http", "https") and parts.netloc == request.host and not parts.path.strip("/"):
        return f"{parts.scheme}://{parts.netloc}"
    return f"{request.scheme}://{request.host}"


@app_routes.get("/api/v1/library/pass")
@public  # anonymous readers get an anonymous pass where a facility allows anonymous browsing
@spec(query={"origin": text(200)},
      response=obj("origin", "url", "expires_in", origin=STR, url=STR, expires_in={"type": "integer", "minimum": 1}))
async def issue_pass(request: web.Request) -> web.Response:
    """A one-minute URL pass for the content origin, bound to the caller's session (the reader frames it)."""
    service = request.app[CONTENT]
    await service.refresh()
    p = maybe_principal(request)
    if p is None and not service.directory.anonymous_allowed:
        raise unauthorized()
    session_id = int(p.session_id) if p is not None and p.via is AuthVia.SESSION and p.session_id else 0
    user_id = p.user_id if session_id else 0
    expires = int(request.app[CLOCK].now().timestamp()) + URL_PASS_TTL_S
    token = service.passes.sign(PassKind.URL, ContentPass(session_id, user_id, _app_origin(request), expires))
    origin = content_origin(request)
    return web.json_response({"data": {"origin": origin, "url": f"{origin}/_pass?t={token}",
                                       "expires_in": URL_PASS_TTL_S}},
                             headers={"Cache-Control": "no-store"})


# --------------------------------------------------------------------------- the content origin's side

def safe_next(value: str | None) -> str:
    """Where the frame may go: an entry or a random article of this origin, never elsewhere."""
    if not value or "\\" in value or "//" in value or any(ord(c) < 0x20 for c in value):
        return "/_blank"
    if value.startswith("/content/") or value.startswith("/random?"):
        return value
    return "/_blank"


@routes.get("/_pass")
@public
async def exchange(request: web.Request) -> web.StreamResponse:
    """Trade a URL pass for the cookie pass, then open the frame page (the pass leaves the address bar)."""
    service = request.app[CONTENT]
    now = request.app[CLOCK].now().timestamp()
    found = service.passes.verify(PassKind.URL, request.query.get("t"), now)
    if found is None:
        raise ApiError(403, "invalid_pass", "this link has expired; open the book again from the library")
    lasting = ContentPass(found.session_id, found.user_id, found.app_origin, int(now) + COOKIE_PASS_TTL_S)
    request[PASS_KEY] = found
    target = "/_frame?" + URL.build(query={"next": safe_next(request.query.get("next"))}).raw_query_string
    resp = web.HTTPSeeOther(target, headers={"Cache-Control": "no-store"})
    config = request.app[CONFIG]
    resp.set_cookie(PASS_COOKIE, service.passes.sign(PassKind.COOKIE, lasting), httponly=True, samesite="Lax",
                    path="/", secure=config.http.secure_cookies or request.secure or None)
    raise resp


@routes.get("/_frame")
@public
async def frame_page(request: web.Request) -> web.Response:
    """The page the reader frames: it hosts the article and tells the reader (only) which one is showing."""
    found = request.get(PASS_KEY)
    if found is None:
        raise ApiError(403, "pass_required", "open this book from the library")
    page = ("<!doctype html><html lang=en data-app-origin=\"" + html.escape(found.app_origin, quote=True) + "\">"
            "<head><meta charset=utf-8><title>Article</title><style>html,body{margin:0;height:100%;"
            "overflow:hidden}iframe{border:0;width:100%;height:100%;display:block}</style></head>"
            "<body><iframe id=article title=Article></iframe><script src=\"/_frame.js\"></script></body></html>")
    return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-store"})


@routes.get("/_frame.js")
@public
async def frame_script(request: web.Request) -> web.Response:
    """The frame page's script (ships with the code)."""
    if not _frame_js:
        _frame_js.append(await run_blocking("io", (FRAME_DIR / "frame.js").read_bytes))
    return web.Response(body=_frame_js[0], content_type="application/javascript", charset="utf-8",
                        headers={"Cache-Control": "no-cache"})


@routes.get("/_blank")
@public
async def blank(request: web.Request) -> web.Response:
    """An empty page for a frame that was sent somewhere it may not go."""
    return web.Response(text="<!doctype html><title>Nothing here</title>", content_type="text/html")
