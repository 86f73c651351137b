"""Adaptive concurrency per provider: halve on throttling or a low rate-limit budget, grow back one by one."""

from __future__ import annotations

import asyncio
from types import TracebackType


class AdaptiveLimit:
    """An async context manager admitting at most `limit` holders; `limit` moves between 1 and `maximum`."""

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self.limit = maximum
        self.active = 0
        self._successes = 0
        self._cond = asyncio.Condition()

    async def __aenter__(self) -> AdaptiveLimit:
        async with self._cond:
            await self._cond.wait_for(lambda: self.active < self.limit)
            self.active += 1
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        async with self._cond:
            self.active -= 1
            self._cond.notify_all()

    def decrease(self) -> None:
        """Upstream pushes back: halve (multiplicative decrease)."""
        self.limit = max(1, self.limit // 2)
        self._successes = 0

    def increase(self) -> None:
        """A success: after `limit` of them in a row, allow one more in flight (additive increase)."""
        self._successes += 1
        if self._successes >= self.limit and self.limit < self.maximum:
            self.limit += 1
            self._successes = 0
