"""Wires the content feature into the application: routes, cleanup contexts, middlewares."""

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register the content feature on the application."""
