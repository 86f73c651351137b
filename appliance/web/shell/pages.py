"""Shell pages: `/` (start), `/login`, `/account/password`, `/admin`. Small HTML, local assets only."""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit

from aiohttp import web

from appliance.web.policy import ADMIN_ROLES, Principal, Role, maybe_principal, public, roles, signed_in

STATIC = Path(__file__).resolve().parent / "static"
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "frame-ancestors 'none'; form-action 'self'",
}
routes = web.RouteTableDef()


_PROBE_ORIGIN = "http://appliance.invalid"


def safe_next(value: str | None) -> str:
    """A local path to go to after sign-in; anything else (other hosts, schemes, //x) becomes /.

    Judged after the normalisation a browser applies before following it (WHATWG URL parsing): leading and
    trailing control characters and spaces dropped, tab and newline removed anywhere, backslash read as a
    slash. So `/\t/evil.example` (a browser reads `//evil.example`) and `/\\evil.example` both become `/`.
    The normalised path is what is returned, so the browser follows exactly what was checked.
    """
    if not value or len(value) > 2000:
        return "/"
    cleaned = "".join(ch for ch in value.strip("".join(map(chr, range(0x21)))) if ch not in "\t\n\r")
    cleaned = cleaned.replace("\\", "/")
    if not cleaned.startswith("/") or cleaned.startswith("//"):
        return "/"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in cleaned):
        return "/"
    try:
        resolved = urlsplit(urljoin(_PROBE_ORIGIN + "/", cleaned))
    except ValueError:
        return "/"
    if f"{resolved.scheme}://{resolved.netloc}" != _PROBE_ORIGIN:
        return "/"
    return cleaned


def _nav(p: Principal | None) -> str:
    links = ['<a href="/">Home</a>', '<a href="/library">Library</a>', '<a href="/videos">Videos</a>']
    if p is not None and p.role in ADMIN_ROLES:
        links.append('<a href="/admin">Admin</a>')
    if p is not None:
        links.append('<a href="/account/password">Password</a>')
        links.append('<button type="button" id="signout" class="link">Sign out</button>')
        who = f'<span class="who">{html.escape(p.username)}</span>'
    else:
        links.append('<a href="/login">Sign in</a>')
        who = ""
    return f'<nav class="top">{" ".join(links)}{who}</nav>'


def page(title: str, body: str, p: Principal | None, *, scripts: tuple[str, ...] = ()) -> web.Response:
    """A full HTML page with the shared navigation and local assets."""
    tags = "".join(f'<script src="/static/shell/{name}" defer></script>' for name in ("shell.js", *scripts))
    text = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        f'<link rel="stylesheet" href="/static/shell/shell.css">{tags}</head>'
        f"<body>{_nav(p)}<main>{body}</main></body></html>"
    )
    return web.Response(text=text, content_type="text/html", headers=SECURITY_HEADERS)


@routes.get("/")
@public
async def start(request: web.Request) -> web.Response:
    """The start page: what this person can do here."""
    p = maybe_principal(request)
    if p is None:
        raise web.HTTPSeeOther("/login")
    tiles = [
        ("/library", "Library", "Wikipedia and other books, readable without internet."),
        ("/videos", "Videos", "Lectures and lessons cached on this appliance."),
    ]
    if p.role in ADMIN_ROLES:
        tiles.append(("/admin", "Administration", "Accounts, content visibility, downloads and sync."))
    cards = "".join(
        f'<a class="card" href="{href}"><h2>{html.escape(name)}</h2><p>{html.escape(text)}</p></a>'
        for href, name, text in tiles
    )
    name = html.escape(p.username)
    return page("appliance", f"<h1>Welcome, {name}</h1><div class=cards>{cards}</div>", p)


@routes.get("/favicon.ico")
@public
async def favicon(request: web.Request) -> web.Response:
    """Browsers ask for this on every site; an empty answer they cache beats a 404 in every log and metric."""
    return web.Response(status=204, headers={"Cache-Control": "public, max-age=604800"})


@routes.get("/login")
@public
async def login_page(request: web.Request) -> web.Response:
    """The sign-in form (it posts JSON to /api/v1/auth/login from shell-login.js)."""
    target = safe_next(request.query.get("next"))
    body = (
        "<h1>Sign in</h1>"
        f'<form id="login" class="box" data-next="{html.escape(target, quote=True)}">'
        '<label>Username <input name="username" autocomplete="username" required maxlength="64" autofocus></label>'
        '<label>Password <input name="password" type="password" autocomplete="current-password" required '
        'maxlength="1024"></label>'
        '<button type="submit">Sign in</button><p class="error" role="alert" hidden></p></form>'
    )
    return page("Sign in", body, maybe_principal(request), scripts=("login.js",))


@routes.get("/account/password")
@signed_in
async def password_page(request: web.Request) -> web.Response:
    """Change one's own password (required after a temporary one)."""
    p = maybe_principal(request)
    notice = ('<p class="notice">You signed in with a temporary password. Choose your own to continue.</p>'
              if p is not None and p.must_change_password else "")
    body = (
        f"<h1>Change password</h1>{notice}"
        '<form id="password" class="box">'
        '<label>Current password <input name="current_password" type="password" autocomplete="current-password" '
        'required maxlength="1024"></label>'
        '<label>New password <input name="new_password" type="password" autocomplete="new-password" required '
        'minlength="8" maxlength="1024"></label>'
        '<label>New password again <input name="again" type="password" autocomplete="new-password" required '
        'maxlength="1024"></label>'
        '<button type="submit">Change password</button><p class="error" role="alert" hidden></p></form>'
    )
    return page("Change password", body, p, scripts=("password.js",))


@routes.get("/admin")
@roles(Role.FACILITY_ADMIN, Role.DEPARTMENT_ADMIN)
async def admin_page(request: web.Request) -> web.Response:
    """The staff landing page: where each admin task lives."""
    p = maybe_principal(request)
    items = [
        ("/admin/videos", "Videos", "add videos by URL, watch downloads, set visibility"),
        ("/library", "Library", "books; visibility, featuring and block lists through the API"),
        ("/api/v1/users", "Accounts (API)", "users, roster import, password resets"),
        ("/api/v1/sync/status", "Sync status (API)", "providers, uplink, queue depth, dead letters"),
        ("/api/v1/system", "System (API)", "CPU, memory, disks, NATS"),
        ("/readyz", "Readiness", "database, NATS, disk and content checks"),
    ]
    rows = "".join(
        f'<li><a href="{href}">{html.escape(name)}</a> <span>{html.escape(text)}</span></li>'
        for href, name, text in items
    )
    return page("Administration", f"<h1>Administration</h1><ul class=admin>{rows}</ul>", p)


def login_redirect(path_qs: str) -> str:
    """Where a browser without a session is sent for a page that needs one."""
    return "/login?next=" + quote(safe_next(path_qs), safe="/")


def setup(app: web.Application) -> None:
    """Register the shell pages and their assets."""
    app.router.add_routes(routes)
    app.router.add_static("/static/shell", STATIC, append_version=False)
