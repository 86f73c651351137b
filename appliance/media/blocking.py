"""Blocking calls of the media feature on the core's named `media` thread pool."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

POOL = "media"


async def media_blocking(fn: Callable[..., T], *args: Any) -> T:
    """Run blocking file or S3 work off the event loop on the media pool."""
    try:
        from appliance.core.blocking import run_blocking
    except ImportError:  # core not present (pure-module tests before integration)
        return await asyncio.to_thread(fn, *args)
    return await run_blocking(POOL, fn, *args)
