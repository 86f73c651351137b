"""Wires the content feature into the application: routes, cleanup contexts, middlewares."""

from aiohttp import web

from appliance.content import (
    origin,
    pages,
    routes_api,
    routes_catalog,
    routes_content,
    routes_pages,
    routes_reports,
    routes_search,
)
from appliance.content.connection import ConnectionFront
from appliance.content.keys import CONTENT_SITE
from appliance.content.service import content_ctx
from appliance.keys import CONFIG, EXTRA_SITES
from appliance.web.middlewares import add_guard


def setup(app: web.Application) -> None:
    """Register the content feature on the application."""
    # The content origin: a second listener in every HTTP process, serving archive entries only.
    site = origin.build_site(app)
    # Plain reads of hot entries are answered by the connections themselves, the rest by the site's app.
    site.front = ConnectionFront(site.app)
    # Packed: a class's reads cost least in one process; the front spreads connections when it is busy.
    site.packed = app[CONFIG].content.pack_busy_fraction < 1.0
    app[CONTENT_SITE] = site
    app[EXTRA_SITES].append(site)
    app.cleanup_ctx.append(content_ctx)
    app.router.add_routes(origin.app_routes)
    app.router.add_routes(routes_content.routes)
    app.router.add_routes(routes_search.routes)
    app.router.add_routes(routes_api.routes)
    app.router.add_routes(routes_catalog.routes)
    app.router.add_routes(routes_reports.routes)
    app.router.add_routes(routes_pages.routes)
    routes_pages.add_static(app)
    pages.setup(app)
    # Before authentication (50): a refused search must not cost a session lookup.
    add_guard(app, routes_search.admission_guard, 45)
