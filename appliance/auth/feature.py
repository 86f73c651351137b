"""Wires the auth feature into the application: routes, cleanup contexts, middlewares."""

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register the auth feature on the application."""
