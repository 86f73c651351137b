"""Identity pages that work without JavaScript: sign-in (a form POST), sign-out, the account page.

Sign-in is a form POST, so the password never appears in a URL. The form carries a token that must match
a cookie set with the form (double submit): a page on another site cannot sign a browser in as someone else.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from aiohttp import web

from appliance.auth import admin_console, admin_pages
from appliance.auth.authn import SESSION_KEY
from appliance.auth.guards import csrf_exempt
from appliance.auth.opaque import same
from appliance.auth.passwords import MIN_PASSWORD_LENGTH
from appliance.auth.routes_session import change_own_password, check_sign_in, end_current_session, start_session
from appliance.auth.webutil import set_session_cookie
from appliance.core.errors import ApiError
from appliance.keys import DB
from appliance.web import i18n, templating
from appliance.web.messages import error_sentence
from appliance.web.policy import maybe_principal, principal, public, signed_in
from appliance.web.shell.pages import safe_next

TEMPLATES = Path(__file__).resolve().parent / "templates"
LOGIN_COOKIE = "login_csrf"
routes = web.RouteTableDef()


def _csrf_context(request: web.Request) -> dict[str, Any]:
    info = request.get(SESSION_KEY)
    return {"csrf_token": info.csrf_token if info is not None else ""}



def _login_form(request: web.Request, *, username: str = "", error: str = "", status: int = 200,
                next_path: str = "/") -> web.Response:
    token = secrets.token_urlsafe(24)
    response = templating.render(request, "auth/login.html", {
        "username": username, "error": error, "next": safe_next(next_path), "login_token": token,
    }, status=status)
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="Strict", path="/login", max_age=3600)
    return response


@routes.get("/login")
@public
async def login_page(request: web.Request) -> web.Response:
    """The sign-in form."""
    if maybe_principal(request) is not None:
        raise web.HTTPSeeOther(safe_next(request.query.get("next")))
    return _login_form(request, next_path=request.query.get("next", "/"))


@routes.post("/login")
@public
@csrf_exempt  # no session yet: the double-submit token below stands in for the session's token
async def login_submit(request: web.Request) -> web.Response:
    """Check the form; on success start a session and go where the person was heading."""
    form = await request.post()
    username = str(form.get("username", ""))[:200]
    next_path = safe_next(str(form.get("next", "/")))
    origin = request.headers.get("Origin")
    sent, kept = str(form.get("login_token", "")), request.cookies.get(LOGIN_COOKIE, "")
    if (origin and origin.split("://", 1)[-1] != request.host) or not sent or not kept or not same(sent, kept):
        return _login_form(request, username=username, status=403, next_path=next_path,
                           error=error_sentence(request, ApiError(403, "csrf_failed", "")))
    try:
        flow, user, method = await check_sign_in(request, username, str(form.get("password", "")))
    except ApiError as exc:
        response = _login_form(request, username=username, error=error_sentence(request, exc),
                               status=exc.status, next_path=next_path)
        response.headers.update(exc.headers)
        return response
    target = "/account/password" if user["must_change_password"] else next_path
    response = await start_session(request, flow, user, method, redirect=target)
    response.del_cookie(LOGIN_COOKIE, path="/login")
    locale = await request.app[DB].fetchval("SELECT locale FROM users WHERE id = ?", (user["id"],))
    if locale:
        i18n.set_language_cookie(response, locale)
    return response


@routes.post("/logout")
@signed_in
async def logout_submit(request: web.Request) -> web.Response:
    """End this session (the CSRF guard checked the form's token) and go to the sign-in page."""
    return await end_current_session(request, web.Response(status=303, headers={"Location": "/login"}))


@routes.get("/account")
@signed_in
async def account_page(request: web.Request) -> web.Response:
    """One's own account: language and password."""
    p = principal(request)
    chosen = await request.app[DB].fetchval("SELECT locale FROM users WHERE id = ?", (p.user_id,))
    saved = request.query.get("saved") == "1"
    return templating.render(request, "auth/account.html", {
        "chosen": chosen or "", "flash": i18n.translate(request, "Saved.") if saved else ""})


@routes.post("/account/language")
@signed_in
async def account_language(request: web.Request) -> web.Response:
    """Save the language setting (empty: follow the browser) and apply it in this browser at once."""
    p = principal(request)
    chosen = str((await request.post()).get("locale", ""))
    if chosen and chosen not in i18n.SUPPORTED:
        raise ApiError(400, "invalid_parameter", "unknown language")
    await request.app[DB].execute("UPDATE users SET locale = ? WHERE id = ?", (chosen or None, p.user_id))
    response = web.Response(status=303, headers={"Location": "/account?saved=1"})
    if chosen:
        i18n.set_language_cookie(response, chosen)
    else:
        response.del_cookie(i18n.LANG_COOKIE, path="/")
    return response


def _password_form(request: web.Request, *, error: str = "", status: int = 200) -> web.Response:
    p = principal(request)
    return templating.render(request, "auth/password.html", {
        "error": error, "temporary": p.must_change_password, "min_length": MIN_PASSWORD_LENGTH}, status=status)


@routes.get("/account/password")
@signed_in
async def password_page(request: web.Request) -> web.Response:
    """Change one's own password (required after a temporary one); the rules are shown up front."""
    return _password_form(request)


@routes.post("/account/password")
@signed_in
async def password_submit(request: web.Request) -> web.Response:
    """Store the new password; this browser keeps a fresh session, every other one is signed out."""
    form = await request.post()
    new, again = str(form.get("new_password", "")), str(form.get("again", ""))
    if new != again:
        return _password_form(request, status=400, error=i18n.translate(request, "The two new passwords differ."))
    try:
        token, _ = await change_own_password(request, str(form.get("current_password", "")), new)
    except ApiError as exc:
        return _password_form(request, status=exc.status, error=error_sentence(request, exc))
    response = web.Response(status=303, headers={"Location": "/"})
    if token is not None:
        set_session_cookie(request, response, token)
    return response


def setup(app: web.Application) -> None:
    """Register the pages, their templates and the CSRF token every page form carries."""
    app.router.add_routes(routes)
    templating.add_templates(app, TEMPLATES)
    templating.add_page_context(app, _csrf_context)
    admin_pages.setup(app)
    admin_console.setup(app)
