"""Wires the media feature into the application: routes, cleanup contexts, middlewares."""

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register the media feature on the application."""
