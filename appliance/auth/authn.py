"""Authenticators (cookie session, bearer API token) registered in app[AUTHENTICATORS]."""

from datetime import datetime, timedelta

from aiohttp import web

from appliance.auth.keys import IDENTITY
from appliance.auth.opaque import TOKEN_PREFIX, hash_secret
from appliance.auth.principals import build_principal
from appliance.auth.sessions import SessionInfo
from appliance.core.clock import iso
from appliance.core.errors import ApiError
from appliance.keys import CLOCK, DB
from appliance.web.policy import AuthVia, Principal, Role

SESSION_KEY = web.RequestKey("auth_session", SessionInfo)
TOKEN_TOUCH_INTERVAL = timedelta(seconds=60)
MAX_TOKEN_LENGTH = 200


def _invalid_token() -> ApiError:
    return ApiError(
        401,
        "invalid_token",
        "the API token is invalid, expired or revoked",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


async def token_authenticator(request: web.Request) -> Principal | None:
    """Authorization: Bearer apt_…; a presented but unusable token is a 401, never anonymous access."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.startswith(TOKEN_PREFIX):
        return None
    token = token.strip()
    if len(token) > MAX_TOKEN_LENGTH:
        raise _invalid_token()
    db = request.app[DB]
    row = await db.fetchone(
        "SELECT t.id AS tid, t.role AS token_role, t.expires_at, t.last_used_at,"
        " u.id, u.uuid, u.username, u.role, u.facility_id, u.must_change_password, u.deactivated_at"
        " FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ? AND t.state = 'active'",
        (hash_secret(token),),
    )
    now = request.app[CLOCK].now()
    if row is None or row["deactivated_at"] is not None:
        raise _invalid_token()
    if row["expires_at"] and now >= datetime.fromisoformat(row["expires_at"]):
        raise _invalid_token()
    last = row["last_used_at"]
    if last is None or now - datetime.fromisoformat(last) >= TOKEN_TOUCH_INTERVAL:
        await db.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (iso(now), row["tid"]))
    # must_change_password travels with the token: a token does not skip a forced change
    user = {k: row[k] for k in ("id", "uuid", "username", "role", "facility_id", "must_change_password")}
    return await build_principal(db, user, AuthVia.TOKEN, None, role_cap=Role(row["token_role"]))


async def session_authenticator(request: web.Request) -> Principal | None:
    """The session cookie; anything unknown, ended or expired is simply anonymous."""
    state = request.app[IDENTITY]
    cookie = cookie_value(request.headers.get("Cookie"), state.auth.cookie_name)
    if not cookie:
        return None
    found = state.sessions.recall(cookie)
    if found is None:
        found = await state.sessions.refills.run(cookie, lambda: _resolve(request, cookie))
        if found is None:
            return None
    request[SESSION_KEY] = found[0]
    return found[1]  # type: ignore[no-any-return]


async def _resolve(request: web.Request, cookie: str) -> tuple[SessionInfo, Principal] | None:
    state = request.app[IDENTITY]
    info = await state.sessions.lookup(cookie)
    if info is None:
        return None
    found = await build_principal(request.app[DB], info.user, AuthVia.SESSION, info.id)
    state.sessions.remember(cookie, info, found)
    return info, found


def cookie_value(header: str | None, name: str) -> str | None:
    """One cookie's value from a Cookie header (the last of that name), without parsing all the others.

    Every signed-in request needs only the session cookie; aiohttp's full parse of every cookie into
    Morsels was a tenth of the cost of a ranged video read. Quoted values are unquoted; values are
    compared as opaque tokens, so nothing else of RFC 6265's grammar matters here.
    """
    if not header or name not in header:
        return None
    found = None
    for part in header.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip() == name:
            found = value  # the last one wins, as in aiohttp's request.cookies
    if found is None:
        return None
    found = found.strip()
    if len(found) >= 2 and found[0] == found[-1] == '"':
        found = found[1:-1]
    return found
