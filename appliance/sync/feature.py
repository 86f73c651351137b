"""Wires the sync feature into the application: routes, cleanup contexts, middlewares."""

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register the sync feature on the application."""
