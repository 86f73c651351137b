"""Wires the content feature into the application: routes, cleanup contexts, middlewares."""

from pathlib import Path

from aiohttp import web

from appliance.content import routes_content, routes_search
from appliance.content.service import content_ctx

LEARNER_STATIC = Path(__file__).resolve().parent.parent / "web" / "learner" / "static"


def setup(app: web.Application) -> None:
    """Register the content feature on the application."""
    app.cleanup_ctx.append(content_ctx)
    app.router.add_routes(routes_content.routes)
    app.router.add_routes(routes_search.routes)
