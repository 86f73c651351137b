"""Running the daemon's processes on uvloop (libuv) or on asyncio's own event loop, as configured.

Under a classroom's load most of a process's time is the event loop itself: waking for each of a
thousand idle keep-alive connections in turn, reading a request, writing a response. uvloop does that
work in C; the code above it (aiohttp, the content origin's connections, asyncio streams and
subprocesses) is the same on both loops. `http.event_loop = "asyncio"` keeps the standard loop (for
debugging, or a platform without a uvloop build).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class EventLoop(enum.StrEnum):
    """Which event loop a process runs."""

    UVLOOP = "uvloop"
    ASYNCIO = "asyncio"


def run(main: Coroutine[Any, Any, T], kind: str) -> T:
    """asyncio.run(main) on the event loop asked for (asyncio's own when uvloop cannot be imported)."""
    if kind == EventLoop.UVLOOP:
        try:
            import uvloop
        except ImportError:
            log.warning("uvloop is not installed; running on asyncio's event loop")
        else:
            return uvloop.run(main)
    return asyncio.run(main)
