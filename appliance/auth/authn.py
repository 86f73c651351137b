"""Authenticators (cookie session, bearer API token) registered in app[AUTHENTICATORS]."""

from datetime import datetime, timedelta

from aiohttp import web

from appliance.auth.opaque import TOKEN_PREFIX, hash_secret
from appliance.auth.principals import build_principal
from appliance.auth.sessions import SessionInfo
from appliance.core.clock import iso
from appliance.core.errors import ApiError
from appliance.keys import CLOCK, DB, IDENTITY
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
        " u.id, u.uuid, u.username, u.role, u.facility_id, u.deactivated_at"
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
    user = {k: row[k] for k in ("id", "uuid", "username", "role", "facility_id")}
    return await build_principal(db, user, AuthVia.TOKEN, None, role_cap=Role(row["token_role"]))


async def session_authenticator(request: web.Request) -> Principal | None:
    """The session cookie; anything unknown, ended or expired is simply anonymous."""
    state = request.app[IDENTITY]
    cookie = request.cookies.get(state.auth.cookie_name)
    if not cookie:
        return None
    cached = state.sessions.recall(cookie)
    if cached is not None:
        request[SESSION_KEY] = cached[0]
        return cached[1]  # type: ignore[no-any-return]
    info = await state.sessions.lookup(cookie)
    if info is None:
        return None
    request[SESSION_KEY] = info
    found = await build_principal(request.app[DB], info.user, AuthVia.SESSION, info.id)
    state.sessions.remember(cookie, info, found)
    return found
