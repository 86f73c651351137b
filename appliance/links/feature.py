"""Wires the helpful links feature in: API routes, the icon route, pages."""

from aiohttp import web

from appliance.links import pages, routes


def setup(app: web.Application) -> None:
    """Register the helpful links feature on the application."""
    app.router.add_routes(routes.routes)
    pages.setup(app)
