"""Extra web applications a process serves on their own ports beside the main one (e.g. the content origin).

A feature registers an ExtraSite in app[EXTRA_SITES]; the server binds it in the primary and in every HTTP
worker (SO_REUSEPORT, like the main port) and records the port it got, so the feature can build its URLs.
A *packed* site is bound by the primary only: its front moves connections to the workers when the primary
is busy (`handoff.py`). The core knows nothing of what a site serves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from appliance.web.handoff import Handoff


class Front(Protocol):
    """What a site puts in front of aiohttp: it makes each connection's protocol, answering what it can itself
    and handing aiohttp (through the `web.Server` it is given) whatever it does not."""

    def factory(self, server: web.Server) -> Callable[[], asyncio.BaseProtocol]:
        """The protocol factory of the listening socket, given aiohttp's own."""
        ...

    def close_idle(self) -> None:
        """Close the connections aiohttp does not hold (at shutdown; aiohttp closes its own)."""
        ...

    def pack(self, handoff: Handoff) -> None:
        """This process (the primary) accepts every connection of a packed site; the front may move idle
        ones to the workers through handoff when this process is busy."""
        ...


@dataclass
class ExtraSite:
    """A second listener of this process: its application, how to pick its port, and the port it got."""

    name: str
    app: web.Application
    # Maps the main site's bound port to the port this site asks for (0 = any free port).
    port_for: Callable[[int], int]
    bound_port: int | None = None
    # Answers some requests before aiohttp sees them (None: aiohttp answers every request).
    front: Front | None = None
    # Listened on by the primary only, its connections moved to workers by the front when the primary is
    # busy (needs a front).
    packed: bool = False


class FrontedRunner(web.AppRunner):
    """An AppRunner whose listening sockets make the front's protocols instead of aiohttp's.

    Sites (TCPSite, SockSite) ask `runner.server` for their protocol factory; aiohttp's own server stays
    `_server`, which the front hands requests to and the runner shuts down as usual.
    """

    def __init__(self, app: web.Application, front: Front, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._front = front
        self._factory: Callable[[], asyncio.BaseProtocol] | None = None

    @property
    def server(self) -> Any:  # the sites only call it
        if self._factory is None and self._server is not None:
            self._factory = self._front.factory(self._server)
        return self._factory

    async def cleanup(self) -> None:
        """aiohttp's clean-up (its connections drained and closed), then the front's idle connections."""
        await super().cleanup()
        self._front.close_idle()


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
