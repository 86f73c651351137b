"""Core middlewares: request id, error envelope, metrics and access log, body limit, authentication, policy."""

from __future__ import annotations

import asyncio
import html
import itertools
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractRoute

from appliance.core.errors import ApiError, too_large
from appliance.keys import AUTHENTICATORS, CONFIG
from appliance.observability.httpmetrics import BUFFER
from appliance.observability.logging import ACCESS, request_id_var
from appliance.observability.metrics import method_label
from appliance.web import i18n
from appliance.web.i18n import N_
from appliance.web.policy import PRINCIPAL_KEY, Access, Policy, check, policy_of
from appliance.web.responses import error_body
from appliance.web.urls import login_redirect

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REQUEST_ID_KEY = web.RequestKey("request_id", str)
STREAM_BODY_ATTR = "__appliance_stream_body__"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_STATUS_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    406: "not_acceptable", 408: "request_timeout", 409: "conflict", 411: "length_required",
    413: "payload_too_large", 414: "uri_too_long", 415: "unsupported_media_type", 416: "range_not_satisfiable",
    422: "unprocessable", 429: "rate_limited", 431: "headers_too_large",
}


def request_id(incoming: str | None = None) -> str:
    """The id of a request: a sane one the client sent, else a new one."""
    return incoming if incoming and _SANE_ID.match(incoming) else _ids.next()


def streams_body(handler: Handler) -> Handler:
    """Mark a handler that reads a large body itself (uploads), so the generic body limit skips it."""
    setattr(handler, STREAM_BODY_ATTR, True)
    return handler


def _wants_html(request: web.Request) -> bool:
    if request.path.startswith("/api/") or request.path == "/api":
        return False
    accept = request.headers.get("Accept", "")
    return "text/html" in accept


HEADINGS = {403: N_("You cannot open this page"), 404: N_("Page not found"), 500: N_("Something went wrong")}


def _error_page(request: web.Request, err: ApiError, headers: dict[str, str]) -> web.Response:
    """A friendly page in the person's language, with the navigation; the request id helps staff find the log."""
    from appliance.web import templating
    from appliance.web.messages import sentence

    with i18n.active(i18n.locale_of(request)):
        heading = i18n.gettext(HEADINGS.get(err.status, N_("This did not work")))
        text = sentence(err.code, err.message)
    try:
        return templating.render(request, "error.html", {
            "heading": heading, "sentence": text, "status": err.status,
            "reference": request.get(REQUEST_ID_KEY, "")}, status=err.status, headers=headers)
    except Exception:  # the error page must never fail: fall back to a plain one
        log.exception("error page could not be rendered")
        body = f"<!doctype html><title>{err.status}</title><h1>{html.escape(heading)}</h1><p><a href='/'>/</a></p>"
        return web.Response(status=err.status, text=body, content_type="text/html", headers=headers)


def _error_response(request: web.Request, err: ApiError) -> web.Response:
    headers = dict(err.headers)
    if err.status == 401 and request.method in ("GET", "HEAD") and _wants_html(request):
        # A person opening a page without a session is sent to sign in, and back afterwards.
        return web.Response(status=303, headers={**headers, "Location": login_redirect(request.path_qs)})
    if _wants_html(request):
        return _error_page(request, err, headers)
    return web.json_response(error_body(err), status=err.status, headers=headers)


class _RequestIds:
    """Cheap unique ids: a random per-process prefix and a counter (ids need not be unguessable)."""

    def __init__(self) -> None:
        self._prefix = uuid.uuid4().hex[:16]
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


_ids = _RequestIds()


class InFlight:
    """Counts requests being handled, so shutdown can wait for them before aiohttp tears connections down.

    aiohttp's own graceful shutdown stops reading from connections at once, so a request still
    uploading its body would never finish; we stop listening first and wait here instead.
    """

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """True when every in-flight request finished within timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            return False


INFLIGHT = web.AppKey("inflight", InFlight)
def _render_exception(request: web.Request, exc: BaseException) -> web.Response:
    if isinstance(exc, ApiError):
        return _error_response(request, exc)
    if isinstance(exc, web.HTTPException):
        code = _STATUS_CODES.get(exc.status, "error")
        message = exc.reason.lower() if exc.reason else code
        if exc.status == 413:
            message = "request body is too large"
        err = ApiError(exc.status, code, message)
        if exc.status == 405 and exc.headers.get("Allow"):
            err.headers["Allow"] = exc.headers["Allow"]
        if exc.status == 404 and request.path.startswith("/api/"):
            err.message = f"no such API route: {request.method} {request.path[:200]}"
        return _error_response(request, err)
    log.error("unhandled error in %s %s", request.method, request.path[:200], exc_info=exc)
    return _error_response(request, ApiError(500, "internal_error", "internal error"))


@web.middleware
async def core_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one middleware: request id, error envelope, metrics, access log, body limit, then access control.

    aiohttp wraps every middleware in two coroutine layers per request, so the core does all of its
    per-request work in a single one; features plug in as guards and authenticators, not middlewares.

    - A sane X-Request-ID from the client is kept, else one is made; every log line of the request has it.
    - ApiError and HTTP errors become the JSON envelope (HTML for browsers); nothing else leaks.
    - Requests are counted and timed by method, route template and status (bounded labels).
    - Bodies over http.max_body_bytes get 413 early unless the route streams its own body.
    """
    start = time.perf_counter()
    rid = request_id(request.headers.get("X-Request-ID"))
    request[REQUEST_ID_KEY] = rid
    token = request_id_var.set(rid)
    config = request.app[CONFIG]
    inflight = request.app[INFLIGHT]
    inflight.enter()
    status = 500
    try:
        try:
            length = request.content_length
            if length is not None and length > config.http.max_body_bytes and not getattr(
                request.match_info.handler, STREAM_BODY_ATTR, False
            ):
                raise too_large(config.http.max_body_bytes)
            response = await _access(request, handler)
        except web.HTTPException as exc:
            if exc.status < 400:
                status = exc.status
                raise
            response = _render_exception(request, exc)
        except ApiError as exc:
            response = _render_exception(request, exc)
        except asyncio.CancelledError:
            status = 499  # the client went away (nginx's convention); not a server error
            raise
        except Exception as exc:
            response = _render_exception(request, exc)
        status = response.status
        return response
    finally:
        elapsed = time.perf_counter() - start
        BUFFER.observe(method_label(request.method), route_label(request), str(status), elapsed)
        if config.logging.access_log:
            ACCESS.add(request.method, request.path, status, elapsed, rid)
        request_id_var.reset(token)
        inflight.leave()


async def add_request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: stamp the id on every response, including streamed and error ones."""
    rid = request.get(REQUEST_ID_KEY)
    if rid:
        response.headers["X-Request-ID"] = rid


def route_label(request: web.Request) -> str:
    """The route template (bounded), never the raw path."""
    route = request.match_info.route
    resource = route.resource if route is not None else None
    if resource is None:
        return "unmatched"
    return resource.canonical


Guard = Callable[[web.Request], Awaitable[None]]
GUARDS = web.AppKey("guards", list)
"""(order, guard) pairs: checks that run before the handler without wrapping it (rate limits, CSRF...)."""
AUTHENTICATION_ORDER = 50


def add_guard(app: web.Application, guard: Guard, order: int) -> None:
    """Register a check that raises to refuse a request; below 50 it runs before authentication."""
    app[GUARDS].append((order, guard))


async def _authenticate(request: web.Request) -> None:
    for authenticate in request.app[AUTHENTICATORS]:
        found = await authenticate(request)
        if found is not None:
            request[PRINCIPAL_KEY] = found
            return


async def _access(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Guards, authentication and the route's policy, then the handler.

    Order: guards below 50 (cheap admission control, before any session lookup), then the registered
    authenticators (first non-None wins), then guards from 50 up (rate limits, CSRF, forced password
    change), then the matched route's declared policy (undeclared routes are denied).
    """
    guards = request.app[GUARDS]
    for order, guard in guards:
        if order >= AUTHENTICATION_ORDER:
            break
        await guard(request)
    await _authenticate(request)
    for order, guard in guards:
        if order >= AUTHENTICATION_ORDER:
            await guard(request)
    match = request.match_info
    if match.http_exception is not None:
        raise match.http_exception
    check(_route_policy(match.route), request.get(PRINCIPAL_KEY))
    return await handler(request)


_POLICIES: dict[AbstractRoute, Policy | None] = {}
_STATIC = Policy(Access.PUBLIC)


def _route_policy(route: AbstractRoute) -> Policy | None:
    """The route's policy, found once per route (isinstance on aiohttp's ABCs is slow on every request)."""
    try:
        return _POLICIES[route]
    except KeyError:
        pass
    # Static assets are public by design; any other route says what it needs or is denied.
    found = _STATIC if isinstance(route.resource, web.StaticResource) else policy_of(route.handler)
    if len(_POLICIES) > 10_000:  # routes of apps made and dropped (tests); a daemon has a few hundred
        _POLICIES.clear()
    _POLICIES[route] = found
    return found
