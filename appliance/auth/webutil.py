"""Small request helpers shared by the identity routes."""

from typing import Any

from aiohttp import web

from appliance.auth.audit import Actor
from appliance.auth.clientaddr import client_addr, is_tls
from appliance.auth.keys import IDENTITY
from appliance.core.errors import not_found
from appliance.web.policy import Principal

MAX_ID = 10**12


def addr_of(request: web.Request) -> str:
    """The client address as the identity feature sees it (trusted proxies applied)."""
    return client_addr(request, request.app[IDENTITY].trusted_proxies)


def actor_of(request: web.Request, p: Principal) -> Actor:
    """The audit actor of a signed-in caller."""
    return Actor(p.user_id, p.username, addr_of(request))


def path_id(request: web.Request, name: str = "id") -> int:
    """An integer path parameter, or 404 (the route regex already limits its digits)."""
    raw = request.match_info.get(name, "")
    if not raw.isdigit() or int(raw) > MAX_ID:
        raise not_found()
    return int(raw)


def set_session_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    """HttpOnly, SameSite=Lax; Secure over TLS (directly or via a trusted proxy) or when http.secure_cookies."""
    state = request.app[IDENTITY]
    settings = state.auth
    secure = state.secure_cookies or is_tls(request, state.trusted_proxies)
    response.set_cookie(
        settings.cookie_name,
        token,
        httponly=True,
        samesite="Lax",
        secure=secure,
        path="/",
        max_age=settings.session_absolute_hours * 3600,
    )


def clear_session_cookie(request: web.Request, response: web.StreamResponse) -> None:
    """Tell the browser to forget the session cookie."""
    response.del_cookie(request.app[IDENTITY].auth.cookie_name, path="/")


def str_field(data: dict[str, Any], name: str) -> str | None:
    """data[name] if it is a string, else None."""
    value = data.get(name)
    return value if isinstance(value, str) else None
