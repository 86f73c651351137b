"""What every fake LMS server shares: a real aiohttp server on 127.0.0.1:0, a listener that can be closed and
reopened on the same port (connection refused, then back), dropped connections, and the usual fault switches
(`slow`, `fail_share`, `lose_answers`) with their counters. Each fake keeps its own public names for these
(`down()`/`up()` on Canvas and Moodle, `go_down()`/`go_up()` on Brightspace) and its own error shapes."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import NoReturn, Self

from aiohttp import web

HUGE_BYTES = 10 * 1024 * 1024


def huge_json() -> web.Response:
    """A 10 MB JSON body (a list of zeros): what a client must refuse to buffer."""
    return web.Response(body=b"[" + b"0," * (HUGE_BYTES // 2) + b"0]", content_type="application/json")


class FakeServer:
    """Server lifecycle and fault plumbing; subclasses set `self.app` and answer requests."""

    app: web.Application

    def __init__(self, *, seed: int) -> None:
        self.rng = random.Random(seed)
        self.failure_share = 0.0
        self.lost_answers_left = 0
        self.delay = 0.0
        self.requests: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    # ---- lifecycle -------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """Base URL of the instance."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Self:
        """Listen on a free loopback port."""
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await self._listen()
        return self

    async def _listen(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()
        server = self._site._server
        assert server is not None and hasattr(server, "sockets")
        self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and release everything."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def close_listener(self) -> None:
        """Connections refused from now on (open keep-alive connections are dropped by `drop`)."""
        if self._site is not None:
            await self._site.stop()
            self._site = None

    async def reopen_listener(self) -> None:
        """Listen again on the same port."""
        if self._site is None and self._runner is not None:
            await self._listen()

    # ---- faults ----------------------------------------------------------------------------------
    def slow(self, seconds: float) -> None:
        """Delay every answer by `seconds`."""
        self.delay = seconds

    def fail_share(self, share: float) -> None:
        """Spoil this share of answers (each fake decides with what, from its seeded `rng`)."""
        self.failure_share = share

    def lose_answers(self, count: int) -> None:
        """Apply the next `count` writes, then drop the connection instead of answering."""
        self.lost_answers_left = count

    async def pause(self) -> None:
        """Wait the configured delay, if any."""
        if self.delay:
            await asyncio.sleep(self.delay)

    def failing_now(self) -> bool:
        """Whether this request falls in the `fail_share` (drawn from the seeded generator)."""
        return bool(self.failure_share) and self.rng.random() < self.failure_share

    def lose_answer(self, request: web.Request) -> None:
        """After a write was applied: drop the connection instead of answering while `lose_answers` lasts."""
        if self.lost_answers_left > 0:
            self.lost_answers_left -= 1
            self.injected["lost_answer"] += 1
            self.drop(request)

    @staticmethod
    def drop(request: web.Request) -> NoReturn:
        """Close the connection without an answer, as a dead link or a closed listener would."""
        assert request.transport is not None
        request.transport.close()
        raise asyncio.CancelledError
