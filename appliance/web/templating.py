"""Server-rendered pages: one Jinja2 environment (autoescape on), one base layout, and the hooks features use.

The core owns the layout, the navigation frame, error pages and the language; a feature adds its own
template folder (`add_templates`), its navigation entries (`add_nav`), sections of the learner home and
of the staff dashboard, and values every page needs (`add_page_context`, e.g. the CSRF token of the
session). The core never imports a feature: it only calls what features registered.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
import markupsafe
from aiohttp import web

from appliance.web import i18n, scriptstrings
from appliance.web.i18n import N_
from appliance.web.policy import ADMIN_ROLES, Principal, maybe_principal

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"
CSP = ("default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self'; script-src 'self'; "
       "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'")
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": CSP,
}


@dataclass(frozen=True)
class NavItem:
    """One entry of the top navigation."""

    order: int
    href: str
    label: str  # an English msgid, translated at render time
    admin_only: bool = False


@dataclass(frozen=True)
class Section:
    """A part of a composed page (learner home, staff dashboard): a template and its values."""

    order: int
    template: str
    values: Mapping[str, Any]


SectionSource = Callable[[web.Request, Principal], Awaitable[Section | None]]
ContextSource = Callable[[web.Request], Mapping[str, Any]]
LOADERS = web.AppKey("template_loaders", list)
NAV = web.AppKey("nav_items", list)
PAGE_CONTEXT = web.AppKey("page_context", list)
HOME_SECTIONS = web.AppKey("home_sections", list)
DASHBOARD_SECTIONS = web.AppKey("dashboard_sections", list)
ADMIN_PAGES = web.AppKey("admin_pages", list)


def setup(app: web.Application) -> None:
    """Create the environment and the hook lists (called by the core before any feature)."""
    loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(str(TEMPLATES))]
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.ChoiceLoader(loaders),  # features append to this same list
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters["filesize"] = filesize
    env.filters["duration"] = duration
    env.filters["highlight"] = highlight
    app[LOADERS] = loaders
    app[NAV] = []
    app[PAGE_CONTEXT] = []
    app[HOME_SECTIONS] = []
    app[DASHBOARD_SECTIONS] = []
    app[ADMIN_PAGES] = []
    app.router.add_static("/static/ui", STATIC, append_version=False)


def add_templates(app: web.Application, folder: Path) -> None:
    """Let a feature's templates be found (name them '<feature>/page.html' to avoid clashes)."""
    app[LOADERS].append(jinja2.FileSystemLoader(str(folder)))


def add_nav(app: web.Application, item: NavItem) -> None:
    """Add a top-navigation entry."""
    app[NAV].append(item)


def add_page_context(app: web.Application, source: ContextSource) -> None:
    """Add values every page can use (called once per render)."""
    app[PAGE_CONTEXT].append(source)


def add_home_section(app: web.Application, source: SectionSource) -> None:
    """Add a part of the learner home page (return None to show nothing)."""
    app[HOME_SECTIONS].append(source)


def add_dashboard_section(app: web.Application, source: SectionSource) -> None:
    """Add a part of the staff dashboard."""
    app[DASHBOARD_SECTIONS].append(source)


def add_admin_page(app: web.Application, order: int, href: str, title: str, description: str) -> None:
    """List a staff page on the /admin dashboard and in the console's side navigation."""
    app[ADMIN_PAGES].append((order, href, title, description))


async def sections(request: web.Request, p: Principal, sources: list[SectionSource]) -> list[Section]:
    """The sections that have something to show, in order."""
    found = [await source(request, p) for source in sources]
    return sorted((s for s in found if s is not None), key=lambda s: s.order)


def nav_for(request: web.Request, p: Principal | None) -> list[dict[str, Any]]:
    """Navigation entries this person may use (only the account while a temporary password is pending)."""
    if p is not None and p.must_change_password:
        return []
    items = [NavItem(0, "/", N_("Home")), *request.app[NAV]]
    out = []
    for item in sorted(items, key=lambda i: i.order):
        if item.admin_only and (p is None or p.role not in ADMIN_ROLES):
            continue
        current = request.path == item.href or (item.href != "/" and request.path.startswith(item.href + "/"))
        out.append({"href": item.href, "label": item.label, "current": current})
    return out


def base_context(request: web.Request) -> dict[str, Any]:
    """What the layout needs: who is signed in, navigation, language, the CSRF token."""
    p = maybe_principal(request)
    admin_pages: list[tuple[int, str, str, str]] = request.app[ADMIN_PAGES]
    values: dict[str, Any] = {
        "user": p,
        "is_admin": p is not None and p.role in ADMIN_ROLES,
        "nav": nav_for(request, p),
        "locale": i18n.locale_of(request),
        "languages": i18n.NAMES,
        "path": request.path,
        "path_qs": request.path_qs,
        "csrf_token": "",
        "flash": "",
        "flash_kind": "",
        "admin_pages": sorted(admin_pages),
        "script_strings": scriptstrings.translated,
    }
    sources: list[ContextSource] = request.app[PAGE_CONTEXT]
    for source in sources:
        values.update(source(request))
    return values


def render(request: web.Request, name: str, values: Mapping[str, Any] | None = None, *, status: int = 200,
           headers: Mapping[str, str] | None = None) -> web.Response:
    """Render a page in the request's language with the layout's values and the page security headers."""
    context = {**base_context(request), **(values or {})}
    with i18n.active(context["locale"]):
        response = aiohttp_jinja2.render_template(name, request, context, status=status)
    response.headers.update(PAGE_HEADERS)
    if headers:
        response.headers.update(headers)
    return response


def highlight(text: str | None, query: str) -> markupsafe.Markup:
    """Escape text and wrap each occurrence of the query's words in <mark> (case-insensitive)."""
    text = text or ""
    words = sorted({w for w in re.findall(r"\w{2,}", query.lower())}, key=len, reverse=True)[:8]
    if not words:
        return markupsafe.escape(text)
    pattern = re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE)
    out, last = [], 0
    for match in pattern.finditer(text):
        out.append(markupsafe.escape(text[last:match.start()]))
        out.append(markupsafe.Markup("<mark>%s</mark>") % match.group(0))
        last = match.end()
    out.append(markupsafe.escape(text[last:]))
    return markupsafe.Markup("").join(out)


def filesize(value: int | float | None) -> str:
    """Bytes as a short human size (KB, MB, GB; decimal units as disks are sold)."""
    if value is None:
        return "–"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" or size >= 100 else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def duration(seconds: int | float | None) -> str:
    """Seconds as m:ss or h:mm:ss (a 45 s clip is 0:45, never "0 min")."""
    if seconds is None:
        return "–"
    total = max(0, int(round(float(seconds))))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
