"""Routes of the signed-in person: login, logout, me, own password, own sessions."""

from typing import Any

from aiohttp import web

from appliance.auth.accounts import USER_COLUMNS, USER_SCHEMA, set_password_tx, user_json
from appliance.auth.authn import SESSION_KEY, cookie_value
from appliance.auth.keys import IDENTITY
from appliance.auth.metrics import RATE_LIMITED
from appliance.auth.passwords import (
    MAX_PASSWORD_LENGTH,
    PasswordError,
    check_length,
    check_strength,
    hash_password,
    verify_password,
)
from appliance.auth.sessions import AuthMethod, SessionState
from appliance.auth.signin import SignIn, audit_sign_out
from appliance.auth.usernames import UsernameError, username_key, validate_username
from appliance.auth.webutil import actor_of, addr_of, clear_session_cookie, set_session_cookie, str_field
from appliance.core.blocking import run_blocking
from appliance.core.errors import ApiError, bad_request, too_many
from appliance.keys import CLOCK, DB
from appliance.web.openapi import BOOL, ID, INT, STR, TIME, arr, nullable, obj, spec, text
from appliance.web.policy import AuthVia, principal, public, signed_in
from appliance.web.responses import ok, read_json

routes = web.RouteTableDef()


def _password_input(value: str | None, name: str) -> str:
    if value is None:
        raise bad_request("invalid_body", f"{name} must be a string", {"field": name})
    if len(value) > MAX_PASSWORD_LENGTH:
        raise bad_request(
            "password_too_long", f"{name} is longer than {MAX_PASSWORD_LENGTH} characters", {"field": name}
        )
    try:
        if value:
            check_length(value)
    except PasswordError as exc:
        raise bad_request("invalid_password", str(exc), {"field": name}) from None
    return value


@routes.post("/api/v1/auth/login")
@public
@spec(body=obj("username", "password", username=text(64), password=text(256)),
      response=obj("user", "csrf_token", "must_change_password", user=USER_SCHEMA, csrf_token=STR,
                   must_change_password=BOOL))
async def login(request: web.Request) -> web.Response:
    """Sign in with username and password (local account, else LDAP); sets a fresh session cookie."""
    data = await read_json(request)
    flow, user, method = await check_sign_in(request, str_field(data, "username"), str_field(data, "password"))
    return await start_session(request, flow, user, method)


async def check_sign_in(
    request: web.Request, raw_name: str | None, raw_password: str | None
) -> tuple[SignIn, Any, AuthMethod]:
    """Validate, rate-limit and check a username and password (the API and the sign-in page share it)."""
    password = _password_input(raw_password, "password")
    if raw_name is None:
        raise bad_request("invalid_body", "username must be a string", {"field": "username"})
    try:
        username = validate_username(raw_name)
    except UsernameError as exc:
        raise bad_request("invalid_username", str(exc), {"field": "username"}) from None
    if not password:
        raise bad_request("invalid_password", "password is empty", {"field": "password"})
    app = request.app
    state = app[IDENTITY]
    wait = state.login_user_limiter.check(username_key(username), app[CLOCK].monotonic())
    if wait:
        RATE_LIMITED.labels("login_user").inc()
        raise too_many(wait)
    addr = addr_of(request)
    flow = SignIn(app[DB], app[CLOCK], state)
    user, method = await flow.password(username, password, addr)
    return flow, user, method


async def start_session(
    request: web.Request, flow: SignIn, user: Any, method: AuthMethod, *, redirect: str | None = None
) -> web.Response:
    """Create the session (rotating any old cookie), audit, and answer with the cookie set."""
    state = request.app[IDENTITY]
    token, csrf = await flow.succeeded(
        user,
        method,
        addr_of(request),
        request.headers.get("User-Agent", ""),
        cookie_value(request.headers.get("Cookie"), state.auth.cookie_name),
    )
    if redirect is not None:
        response = web.Response(status=303, headers={"Location": redirect})
    else:
        response = ok(
            {"user": user_json(user), "csrf_token": csrf, "must_change_password": bool(user["must_change_password"])}
        )
    set_session_cookie(request, response, token)
    return response


@routes.post("/api/v1/auth/logout")
@signed_in
@spec(body=obj(), response=obj("signed_out", signed_out={"const": True}))
async def logout(request: web.Request) -> web.Response:
    """End the current session and clear the cookie."""
    return await end_current_session(request, ok({"signed_out": True}))


async def end_current_session(request: web.Request, response: web.Response) -> web.Response:
    """Sign the caller out (the API and the page form share it): end this session if the caller came with
    one, audit the sign-out, and clear the cookie on `response`."""
    p = principal(request)
    app = request.app
    state = app[IDENTITY]
    if p.via is AuthVia.SESSION:
        cookie = cookie_value(request.headers.get("Cookie"), state.auth.cookie_name) or ""
        await state.sessions.end(cookie, SessionState.LOGGED_OUT)
    await audit_sign_out(app[DB], app[CLOCK], p.user_id, p.username, p.facility_id, addr_of(request))
    clear_session_cookie(request, response)
    return response


@routes.get("/api/v1/auth/me")
@signed_in
@spec(response={**USER_SCHEMA, "required": [*USER_SCHEMA["required"], "effective_role", "facility_ids", "via"],
                "properties": {**USER_SCHEMA["properties"], "effective_role": STR, "facility_ids": arr(ID),
                               "via": STR, "csrf_token": nullable(STR)}})
async def me(request: web.Request) -> web.Response:
    """Who am I: the account, role, facilities, and the CSRF token of this session."""
    p = principal(request)
    row = await request.app[DB].fetchone(
        f"SELECT {USER_COLUMNS} FROM users WHERE id = ?",  # noqa: S608
        (p.user_id,),
    )
    info = request.get(SESSION_KEY)
    body = user_json(row)
    body.update(
        {
            "effective_role": p.role.value,
            "facility_ids": sorted(p.facility_ids),
            "via": p.via.value,
            "csrf_token": info.csrf_token if info is not None else None,
        }
    )
    return ok(body)


@routes.post("/api/v1/auth/password")
@signed_in
@spec(body=obj("current_password", "new_password", current_password=text(256), new_password=text(256)),
      response=obj("password_changed", password_changed={"const": True}, csrf_token=STR))
async def change_password(request: web.Request) -> web.Response:
    """Change one's own password (required after a temporary one); other sessions end, this one rotates."""
    data = await read_json(request)
    token, csrf = await change_own_password(
        request, str_field(data, "current_password"), str_field(data, "new_password"))
    if token is None:
        return ok({"password_changed": True})
    response = ok({"password_changed": True, "csrf_token": csrf})
    set_session_cookie(request, response, token)
    return response


async def change_own_password(
    request: web.Request, raw_current: str | None, raw_new: str | None
) -> tuple[str | None, str | None]:
    """Check and store a new own password; returns the new session's (cookie token, csrf) for cookie sessions."""
    p = principal(request)
    current = _password_input(raw_current, "current_password")
    new = _password_input(raw_new, "new_password")
    try:
        check_strength(new)
    except PasswordError as exc:
        raise bad_request("weak_password", str(exc), {"field": "new_password"}) from None
    if new == current:
        raise bad_request(
            "weak_password", "the new password must differ from the current one", {"field": "new_password"}
        )
    app = request.app
    db, state = app[DB], app[IDENTITY]
    row = await db.fetchone(
        f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE id = ?",  # noqa: S608
        (p.user_id,),
    )
    if row is None or row["auth_source"] != "local":
        raise ApiError(409, "not_local_account", "this account's password is managed by the directory")
    if not await run_blocking("auth", verify_password, row["password_hash"], current):
        raise ApiError(403, "wrong_password", "the current password is wrong")
    new_hash = await run_blocking("auth", hash_password, new)
    async with db.transaction() as tx:
        await set_password_tx(
            tx,
            app[CLOCK].iso_now(),
            row,
            new_hash,
            temporary=False,
            actor=actor_of(request, p),
            sessions=state.sessions,
        )
    if p.via is not AuthVia.SESSION:
        return None, None
    # The old session was ended with the others: hand out a new id (privilege change → new session id).
    token, csrf, _ = await state.sessions.create(
        p.user_id, AuthMethod.PASSWORD, addr_of(request), request.headers.get("User-Agent", "")
    )
    return token, csrf


@routes.get("/api/v1/auth/sessions")
@signed_in
@spec(response=arr(obj("id", "created_at", "current", id=INT, created_at=TIME, last_seen_at=nullable(TIME),
                       expires_at=TIME, client_addr=nullable(STR), user_agent=nullable(STR),
                       auth_method=nullable(STR), current=BOOL)))
async def my_sessions(request: web.Request) -> web.Response:
    """One's own live sessions (the current one is flagged)."""
    p = principal(request)
    items = await request.app[IDENTITY].sessions.list_for_user(p.user_id)
    for item in items:
        item["current"] = str(item["id"]) == p.session_id
    return ok(items)
