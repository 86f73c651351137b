"""Single flight: concurrent callers asking for the same key share one load instead of each running it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """When a per-process cache entry expires under load, only the first caller queries SQLite.

    The others await the same future. The load runs as its own task and is shielded, so a caller that
    is cancelled (its client went away) does not cancel the load for everyone else.
    """

    def __init__(self) -> None:
        self._pending: dict[Hashable, asyncio.Future[T]] = {}

    async def run(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        """The result of `load()`, shared with every concurrent caller for the same key."""
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(load())
            self._pending[key] = pending
            pending.add_done_callback(lambda _f: self._pending.pop(key, None))
        return await asyncio.shield(pending)

    def __len__(self) -> int:
        return len(self._pending)
