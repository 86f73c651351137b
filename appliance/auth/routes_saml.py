"""SAML routes: SP metadata, the redirect to the IdP, and the assertion consumer service."""

import secrets
from datetime import timedelta
from urllib.parse import urlsplit

from aiohttp import web

from appliance.auth.audit import Actor, AuditAction, record
from appliance.auth.guards import csrf_exempt
from appliance.auth.metrics import SIGN_INS
from appliance.auth.routes_session import start_session
from appliance.auth.saml import ACS_PATH, LOGIN_PATH, METADATA_PATH, SamlError, SamlServiceProvider
from appliance.auth.sessions import AuthMethod
from appliance.auth.signin import SignIn
from appliance.auth.webutil import addr_of
from appliance.core.blocking import run_blocking
from appliance.core.clock import iso
from appliance.core.errors import ApiError, bad_request, not_found
from appliance.keys import CLOCK, DB, IDENTITY
from appliance.web.policy import public

routes = web.RouteTableDef()
REQUEST_TTL = timedelta(minutes=10)
MAX_RESPONSE_BYTES = 256 * 1024


def _sp(request: web.Request) -> SamlServiceProvider:
    sp = request.app[IDENTITY].saml
    if sp is None:
        raise not_found("SAML sign-in is not enabled")
    return sp


def _safe_next(value: str) -> str:
    """Only local paths: an open redirect after sign-in would hand phishers a trusted link."""
    parts = urlsplit(value)
    if not value.startswith("/") or value.startswith("//") or parts.scheme or parts.netloc or "\\" in value:
        return "/"
    return value[:500]


@routes.get(METADATA_PATH)
@public
async def saml_metadata(request: web.Request) -> web.Response:
    """This SP's metadata XML for the IdP administrator."""
    xml = await run_blocking("io", _sp(request).metadata_xml)
    return web.Response(text=xml, content_type="application/samlmetadata+xml")


@routes.get(LOGIN_PATH)
@public
async def saml_login(request: web.Request) -> web.Response:
    """Redirect the browser to the IdP with a fresh AuthnRequest (remembered for the ACS)."""
    sp = _sp(request)
    relay = secrets.token_urlsafe(16)
    request_id, location = await run_blocking("io", sp.login_redirect, relay)
    app = request.app
    now = app[CLOCK].now()
    await app[DB].execute(
        "INSERT INTO saml_requests (request_id, relay_state, expires_at) VALUES (?, ?, ?)",
        (request_id, _safe_next(request.query.get("next", "/")), iso(now + REQUEST_TTL)),
    )
    return web.Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})


@routes.post(ACS_PATH)
@public
@csrf_exempt
async def saml_acs(request: web.Request) -> web.Response:
    """Check the posted assertion (signature, audience, time, InResponseTo, replay) and sign the user in."""
    sp = _sp(request)
    if request.content_length is not None and request.content_length > MAX_RESPONSE_BYTES:
        raise bad_request("invalid_saml", "SAMLResponse is too large")
    form = await request.post()
    saml_response = form.get("SAMLResponse")
    if not isinstance(saml_response, str) or not saml_response or len(saml_response) > MAX_RESPONSE_BYTES:
        raise bad_request("invalid_saml", "SAMLResponse is missing")
    app = request.app
    db, clock, state = app[DB], app[CLOCK], app[IDENTITY]
    now = clock.now()
    rows = await db.fetchall("SELECT request_id, relay_state FROM saml_requests WHERE expires_at > ?", (iso(now),))
    outstanding = {r["request_id"]: r["relay_state"] for r in rows}
    addr = addr_of(request)
    try:
        assertion = await run_blocking("io", sp.parse_response, saml_response, outstanding)
    except SamlError as exc:
        SIGN_INS.labels("saml", "failure").inc()
        await record(
            db, iso(now), AuditAction.SIGN_IN_FAILED, Actor(None, "saml", addr), details={"reason": exc.reason.value}
        )
        raise ApiError(
            403, "saml_refused", f"the identity provider's answer was refused ({exc.reason.value})"
        ) from None
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
        SIGN_INS.labels("saml", "failure").inc()
        await record(
            db, iso(now), AuditAction.SIGN_IN_FAILED, Actor(None, "saml", addr), details={"reason": "replayed"}
        )
        raise ApiError(403, "saml_refused", "the identity provider's answer was already used")
    flow = SignIn(db, clock, state)
    user = await flow.upsert_external(assertion.profile, Actor(None, "saml", addr))
    if user is None:
        SIGN_INS.labels("saml", "failure").inc()
        await record(
            db,
            iso(now),
            AuditAction.SIGN_IN_FAILED,
            Actor(None, "saml", addr),
            target_name=assertion.profile.username[:64],
            details={"reason": "account_refused"},
        )
        raise ApiError(403, "saml_refused", "this account may not sign in through the identity provider")
    return await start_session(
        request, flow, user, AuthMethod.SAML, redirect=outstanding.get(assertion.in_response_to or "", "/")
    )
