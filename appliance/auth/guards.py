"""Identity guards: rate limits (order 60), CSRF (70) and the forced password change (80)."""

from typing import Any

from aiohttp import web

from appliance.auth.authn import SESSION_KEY
from appliance.auth.clientaddr import client_addr
from appliance.auth.keys import IDENTITY
from appliance.auth.metrics import RATE_LIMITED
from appliance.auth.opaque import same
from appliance.core.errors import ApiError, too_many
from appliance.keys import CLOCK
from appliance.web.policy import AuthVia, maybe_principal

# Sign-in entry points share the stricter per-address bucket (the SAML ones store a request row each).
LOGIN_PATHS = frozenset({"/api/v1/auth/login", "/saml/login", "/saml/acs"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
CSRF_EXEMPT_ATTR = "__appliance_csrf_exempt__"
# Content types a cross-site <form> can send without a CORS preflight.
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")
# What a user who must change a temporary password may still reach: the password page, what it loads and
# calls (the static assets, which hold no data; /me for the CSRF token), and sign-out by the API or the
# page form. Everything else (pages, API, /content, video streams, SSE feeds) waits for the change.
PASSWORD_PAGE = "/account/password"  # noqa: S105 - a page, not a password
_PASSWORD_CHANGE_PATHS = frozenset({"/api/v1/auth/me", "/api/v1/auth/password", "/api/v1/auth/logout",
                                    PASSWORD_PAGE, "/logout", "/favicon.ico"})
_PASSWORD_CHANGE_PREFIXES = ("/static/",)


def csrf_exempt(handler: Any) -> Any:
    """Mark a handler that is protected otherwise (the SAML ACS: signed, single-use assertions)."""
    setattr(handler, CSRF_EXEMPT_ATTR, True)
    return handler


def _csrf_failed(message: str) -> ApiError:
    return ApiError(403, "csrf_failed", message)


async def rate_limit_guard(request: web.Request) -> None:
    """Token buckets per client address and per signed-in user on the API; stricter ones on sign-in."""
    if not request.path.startswith("/api/") and request.path not in LOGIN_PATHS:
        return
    state = request.app[IDENTITY]
    now = request.app[CLOCK].monotonic()
    addr = client_addr(request, state.trusted_proxies)
    if request.path in LOGIN_PATHS:
        checks = [("login_address", state.login_limiter, addr)]
    else:
        checks = [("api_address", state.api_address_limiter, addr)]
        p = maybe_principal(request)
        if p is not None:
            checks.append(("api_user", state.api_limiter, str(p.user_id)))
    for bucket, limiter, key in checks:
        wait = limiter.check(key, now)
        if wait:
            RATE_LIMITED.labels(bucket).inc()
            raise too_many(wait)


async def csrf_guard(request: web.Request) -> None:
    """State-changing cookie-authenticated requests need the session's CSRF token; form posts always do."""
    if request.method in SAFE_METHODS or getattr(request.match_info.handler, CSRF_EXEMPT_ATTR, False):
        return
    p = maybe_principal(request)
    if p is not None and p.via is AuthVia.TOKEN:
        return  # a bearer token is never sent by a browser on its own
    origin = request.headers.get("Origin")
    if origin and origin != "null" and origin.split("://", 1)[-1] != request.host:
        raise _csrf_failed("cross-origin request refused")
    info = request.get(SESSION_KEY)
    if info is not None:
        sent = request.headers.get(CSRF_HEADER, "")
        # Only small urlencoded forms are read here: a multipart upload must send the header (never buffered).
        if not sent and request.content_type == "application/x-www-form-urlencoded":
            sent = str((await request.post()).get(CSRF_FIELD, ""))
        if not sent or not same(sent, info.csrf_token):
            raise _csrf_failed("missing or wrong CSRF token")
        return
    if request.content_type in _FORM_TYPES or origin == "null":
        # Anonymous form posts (e.g. a login form on another site) have no session to bind a token to.
        raise _csrf_failed("form posts need a CSRF token; send JSON")


async def password_change_guard(request: web.Request) -> None:
    """A user holding a temporary password may only change it (or sign out) until they do.

    Applies to sessions and API tokens alike; a browser asking for a page is sent to the password page.
    """
    p = maybe_principal(request)
    if p is None or not p.must_change_password:
        return
    path = request.path
    if path in _PASSWORD_CHANGE_PATHS or path.startswith(_PASSWORD_CHANGE_PREFIXES):
        return
    if (request.method in SAFE_METHODS and not path.startswith("/api/")
            and "text/html" in request.headers.get("Accept", "")):
        raise web.HTTPSeeOther(PASSWORD_PAGE)
    raise ApiError(403, "password_change_required", "change your temporary password first")


# (order, guard): after authentication (50), before the route policy.
GUARDS = ((60, rate_limit_guard), (70, csrf_guard), (80, password_change_guard))
