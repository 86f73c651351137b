"""SAML routes: SP metadata, the redirect to the IdP, and the assertion consumer service."""

import secrets
from datetime import timedelta

from aiohttp import web

from appliance.auth.audit import Actor, AuditAction, record
from appliance.auth.clientaddr import is_tls
from appliance.auth.guards import csrf_exempt
from appliance.auth.keys import IDENTITY
from appliance.auth.metrics import SIGN_INS
from appliance.auth.opaque import hash_secret, new_secret, same
from appliance.auth.routes_session import start_session
from appliance.auth.saml import ACS_PATH, LOGIN_PATH, METADATA_PATH, SamlError, SamlServiceProvider
from appliance.auth.sessions import AuthMethod
from appliance.auth.signin import SignIn
from appliance.auth.webutil import addr_of
from appliance.core.blocking import run_blocking
from appliance.core.clock import iso
from appliance.core.errors import ApiError, bad_request, not_found
from appliance.keys import CLOCK, DB
from appliance.web.policy import public
from appliance.web.shell.pages import safe_next

routes = web.RouteTableDef()
REQUEST_TTL = timedelta(minutes=10)
BINDING_COOKIE = "appliance_saml"
MAX_RESPONSE_BYTES = 256 * 1024


def _sp(request: web.Request) -> SamlServiceProvider:
    sp = request.app[IDENTITY].saml
    if sp is None:
        raise not_found("SAML sign-in is not enabled")
    return sp


def _safe_next(value: str) -> str:
    """Only local paths: an open redirect after sign-in would hand phishers a trusted link."""
    target = safe_next(value)
    return target if len(target) <= 500 else "/"


@routes.get(METADATA_PATH)
@public
async def saml_metadata(request: web.Request) -> web.Response:
    """This SP's metadata XML for the IdP administrator."""
    xml = await run_blocking("io", _sp(request).metadata_xml)
    return web.Response(text=xml, content_type="application/samlmetadata+xml")


@routes.get(LOGIN_PATH)
@public
async def saml_login(request: web.Request) -> web.Response:
    """Redirect the browser to the IdP with a fresh AuthnRequest bound to this browser by a cookie."""
    sp = _sp(request)
    request_id, location = await run_blocking("io", sp.login_redirect, secrets.token_urlsafe(16))
    app = request.app
    now = app[CLOCK].now()
    binding = new_secret()
    await app[DB].execute(
        "INSERT INTO saml_requests (request_id, relay_state, browser_hash, expires_at) VALUES (?, ?, ?, ?)",
        (request_id, _safe_next(request.query.get("next", "/")), hash_secret(binding), iso(now + REQUEST_TTL)),
    )
    response = web.Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})
    # The IdP posts back cross-site: only SameSite=None (which needs Secure, so TLS) brings the cookie along.
    tls = _tls(request)
    response.set_cookie(
        BINDING_COOKIE,
        binding,
        path=ACS_PATH,
        httponly=True,
        max_age=int(REQUEST_TTL.total_seconds()),
        secure=tls,
        samesite="None" if tls else "Lax",
    )
    return response


def _tls(request: web.Request) -> bool:
    state = request.app[IDENTITY]
    return state.secure_cookies or is_tls(request, state.trusted_proxies)


async def _refuse(request: web.Request, reason: str, message: str, target: str = "") -> ApiError:
    """Count, audit and build the refusal of an IdP answer."""
    SIGN_INS.labels("saml", "failure").inc()
    app = request.app
    await record(
        app[DB],
        app[CLOCK].iso_now(),
        AuditAction.SIGN_IN_FAILED,
        Actor(None, "saml", addr_of(request)),
        target_name=target[:64],
        details={"reason": reason},
    )
    return ApiError(403, "saml_refused", message)


@routes.post(ACS_PATH)
@public
@csrf_exempt
async def saml_acs(request: web.Request) -> web.Response:
    """Check the posted assertion (signature, audience, time, InResponseTo, replay, browser) and sign in."""
    sp = _sp(request)
    if request.content_length is not None and request.content_length > MAX_RESPONSE_BYTES:
        raise bad_request("invalid_saml", "SAMLResponse is too large")
    form = await request.post()
    saml_response = form.get("SAMLResponse")
    if not isinstance(saml_response, str) or not saml_response or len(saml_response) > MAX_RESPONSE_BYTES:
        raise bad_request("invalid_saml", "SAMLResponse is missing")
    app = request.app
    db, clock, state = app[DB], app[CLOCK], app[IDENTITY]
    rows = await db.fetchall(
        "SELECT request_id, relay_state, browser_hash FROM saml_requests WHERE expires_at > ?", (clock.iso_now(),)
    )
    outstanding = {r["request_id"]: r["relay_state"] for r in rows}
    try:
        assertion = await run_blocking("io", sp.parse_response, saml_response, outstanding)
    except SamlError as exc:
        raise await _refuse(
            request, exc.reason.value, f"the identity provider's answer was refused ({exc.reason.value})"
        ) from None
    bound = next((r["browser_hash"] for r in rows if r["request_id"] == assertion.in_response_to), "")
    cookie = request.cookies.get(BINDING_COOKIE, "")
    # A response must come back to the browser that asked for it, or an attacker could sign a victim's
    # browser in to the attacker's account. Over plain HTTP browsers drop the cookie, so it is checked when
    # present there and required over TLS.
    if (cookie or _tls(request)) and not (cookie and bound and same(hash_secret(cookie), bound)):
        raise await _refuse(request, "other_browser", "this sign-in was started in another browser")
    async with db.transaction() as tx:
        # Both the request id and the assertion id are single-use: a replay finds neither.
        cur = await tx.execute("DELETE FROM saml_requests WHERE request_id = ?", (assertion.in_response_to,))
        fresh = cur.rowcount == 1
        cur = await tx.execute(
            "INSERT OR IGNORE INTO saml_assertions (assertion_id, expires_at) VALUES (?, ?)",
            (assertion.assertion_id, assertion.not_on_or_after),
        )
        fresh = fresh and cur.rowcount == 1
    if not fresh:
        raise await _refuse(request, "replayed", "the identity provider's answer was already used")
    flow = SignIn(db, clock, state)
    user = await flow.upsert_external(assertion.profile, Actor(None, "saml", addr_of(request)))
    if user is None:
        raise await _refuse(
            request,
            "account_refused",
            "this account may not sign in through the identity provider",
            assertion.profile.username,
        )
    response = await start_session(
        request, flow, user, AuthMethod.SAML, redirect=outstanding.get(assertion.in_response_to or "", "/")
    )
    response.del_cookie(BINDING_COOKIE, path=ACS_PATH)
    return response
