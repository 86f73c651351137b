"""Extra web applications a process serves on their own ports beside the main one (e.g. the content origin).

A feature registers an ExtraSite in app[EXTRA_SITES]; the server binds it in the primary and in every HTTP
worker (SO_REUSEPORT, like the main port) and records the port it got, so the feature can build its URLs.
The core knows nothing of what a site serves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web


@dataclass
class ExtraSite:
    """A second listener of this process: its application, how to pick its port, and the port it got."""

    name: str
    app: web.Application
    # Maps the main site's bound port to the port this site asks for (0 = any free port).
    port_for: Callable[[int], int]
    bound_port: int | None = None


def port_after(configured: int, main_configured: int) -> Callable[[int], int]:
    """The usual rule: an explicit port, else the main port + 1 (a free port when the main one is too)."""

    def pick(main_bound: int) -> int:
        if configured > 0 and configured == main_bound:
            # SO_REUSEPORT would let both sites share the port and split connections between them.
            raise RuntimeError(f"the content port ({configured}) must differ from the app port")
        if configured >= 0:
            return configured
        return 0 if main_configured == 0 else main_bound + 1

    return pick
