"""Core middlewares: request id, error envelope, metrics and access log, body limit, authentication, policy."""

from __future__ import annotations

import html
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from appliance.core.errors import ApiError, too_large
from appliance.keys import AUTHENTICATORS, CONFIG
from appliance.observability.logging import request_id_var
from appliance.observability.metrics import HTTP_LATENCY, HTTP_REQUESTS, method_label
from appliance.web.policy import PRINCIPAL_KEY, check, policy_of
from appliance.web.responses import error_body

log = logging.getLogger(__name__)
access_log = logging.getLogger("appliance.access")
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


def streams_body(handler: Handler) -> Handler:
    """Mark a handler that reads a large body itself (uploads), so the generic body limit skips it."""
    setattr(handler, STREAM_BODY_ATTR, True)
    return handler


def _wants_html(request: web.Request) -> bool:
    if request.path.startswith("/api/") or request.path == "/api":
        return False
    accept = request.headers.get("Accept", "")
    return "text/html" in accept


def _error_response(request: web.Request, err: ApiError) -> web.Response:
    headers = dict(err.headers)
    if _wants_html(request):
        title = f"{err.status} {html.escape(err.message)}"
        page = (
            "<!doctype html><html lang=en><meta charset=utf-8><title>" + title + "</title>"
            "<body style='font-family:sans-serif;max-width:40em;margin:4em auto'>"
            f"<h1>{html.escape(err.message.capitalize())}</h1>"
            f"<p>Error {err.status}. Reference: <code>{html.escape(request.get(REQUEST_ID_KEY, ''))}</code></p>"
            "<p><a href='/'>Back to the start page</a></p></body></html>"
        )
        return web.Response(status=err.status, text=page, content_type="text/html", headers=headers)
    return web.json_response(error_body(err), status=err.status, headers=headers)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Take a sane X-Request-ID from the client or make one; every log line of the request carries it."""
    incoming = request.headers.get("X-Request-ID", "")
    rid = incoming if _SANE_ID.match(incoming) else uuid.uuid4().hex
    request[REQUEST_ID_KEY] = rid
    token = request_id_var.set(rid)
    try:
        return await handler(request)
    finally:
        request_id_var.reset(token)


async def add_request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: stamp the id on every response, including streamed and error ones."""
    rid = request.get(REQUEST_ID_KEY)
    if rid:
        response.headers["X-Request-ID"] = rid


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render ApiError and HTTP errors as the JSON envelope (HTML for browsers); never leak a traceback."""
    try:
        return await handler(request)
    except ApiError as err:
        return _error_response(request, err)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _STATUS_CODES.get(exc.status, "error")
        message = exc.reason.lower() if exc.reason else code
        if exc.status == 413:
            message = "request body is too large"
        err = ApiError(exc.status, code, message)
        if exc.status == 405:
            allow = exc.headers.get("Allow")
            if allow:
                err.headers["Allow"] = allow
        if exc.status == 404 and request.path.startswith("/api/"):
            err.message = f"no such API route: {request.method} {request.path[:200]}"
        return _error_response(request, err)
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path[:200])
        return _error_response(request, ApiError(500, "internal_error", "internal error"))


def route_label(request: web.Request) -> str:
    """The route template (bounded), never the raw path."""
    route = request.match_info.route
    resource = route.resource if route is not None else None
    if resource is None:
        return "unmatched"
    return resource.canonical


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time requests by method, route template and status; write the access log line."""
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        elapsed = time.perf_counter() - start
        route = route_label(request)
        method = method_label(request.method)
        HTTP_REQUESTS.labels(method, route, str(status)).inc()
        HTTP_LATENCY.labels(method, route).observe(elapsed)
        if request.app[CONFIG].logging.access_log:
            access_log.info("%s %s %s %.1fms", request.method, request.path[:200], status, elapsed * 1000)


@web.middleware
async def body_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """413 early for bodies over the configured limit, unless the route streams its own body."""
    limit = request.app[CONFIG].http.max_body_bytes
    length = request.content_length
    route_handler = request.match_info.handler
    if length is not None and length > limit and not getattr(route_handler, STREAM_BODY_ATTR, False):
        raise too_large(limit)
    return await handler(request)


@web.middleware
async def authentication_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Ask each registered authenticator in turn who the caller is."""
    for authenticate in request.app[AUTHENTICATORS]:
        found = await authenticate(request)
        if found is not None:
            request[PRINCIPAL_KEY] = found
            break
    return await handler(request)


@web.middleware
async def policy_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Enforce the matched route's declared policy; routes without one are denied."""
    match = request.match_info
    if match.http_exception is not None:
        raise match.http_exception
    route = match.route
    if isinstance(route.resource, web.StaticResource):
        return await handler(request)  # static assets are public by design
    check(policy_of(match.handler), request.get(PRINCIPAL_KEY))
    return await handler(request)
