"""A webhook receiver for the tests: a real aiohttp server that verifies every delivery with `standardwebhooks`.

It can be taken down and brought back on the same port, answer 500 to a share of requests, redirect, or
answer a huge body, and it records what arrived (by webhook-id) and anything that failed verification.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Received:
    """One verified delivery."""

    msg_id: str
    type: str
    data: dict[str, Any]
    headers: dict[str, str]
    at: float


@dataclass
class Receiver:
    """Counts verified deliveries per webhook-id; `fail_every` answers 500 to every n-th request."""

    secrets: list[str] = field(default_factory=list)
    port: int = 0
    fail_every: int = 0
    status: int = 200
    redirect_to: str | None = None
    big_body: int = 0
    delay_s: float = 0.0
    requests: int = 0
    failed_on_purpose: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    received: list[Received] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """Where the webhook should POST."""
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        """Listen (on the same port as before, if it ran already)."""
        if not self.port:
            self.port = free_port()
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_post("/hook", self.handle)
        app.router.add_get("/stats", self.stats)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        """Go down: connections are refused until start() again."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def verify(self, body: bytes, headers: dict[str, str]) -> Any:
        """Verify with any known secret through the off-the-shelf library; raises when none matches."""
        error: Exception | None = None
        for secret in self.secrets:
            try:
                return Webhook(secret).verify(body, headers)
            except WebhookVerificationError as exc:
                error = exc
        raise error or WebhookVerificationError("no secret")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Verify, record, then answer as configured."""
        self.requests += 1
        body = await request.read()
        headers = dict(request.headers)
        try:
            payload = self.verify(body, headers)
        except WebhookVerificationError as exc:
            self.bad.append(f"{exc}: {headers.get('webhook-id')}")
            return web.Response(status=400, text="bad signature")
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.redirect_to:
            raise web.HTTPFound(self.redirect_to)
        if self.fail_every and self.requests % self.fail_every == 0:
            self.failed_on_purpose += 1
            return web.Response(status=500, text="receiver failing on purpose")
        if self.status != 200:
            return web.Response(status=self.status, text=f"answered {self.status}")
        msg_id = headers["webhook-id"]
        self.counts[msg_id] += 1
        self.received.append(Received(msg_id, payload["type"], payload["data"], headers, time.monotonic()))
        self.arrived.set()
        if self.big_body:
            return web.Response(body=b"x" * self.big_body)
        return web.json_response({"ok": True})

    async def stats(self, request: web.Request) -> web.Response:
        """What arrived, for a benchmark driving this receiver in another process (?arrivals=1 adds times)."""
        body: dict[str, Any] = {"distinct": len(self.counts), "total": sum(self.counts.values()),
                                "requests": self.requests, "bad": len(self.bad)}
        if request.query.get("arrivals"):
            first: dict[str, float] = {}
            for r in self.received:
                first.setdefault(r.msg_id, r.at)
            body["arrivals"] = first
        return web.json_response(body)

    def of_type(self, event_type: str) -> list[Received]:
        """Verified deliveries of one type."""
        return [r for r in self.received if r.type == event_type]

    async def wait_for(self, predicate: Any, timeout: float = 30.0) -> None:
        """Poll until predicate() holds (fails the test with what arrived otherwise)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; {len(self.counts)} distinct arrived, {self.requests} requests,"
                                     f" bad={self.bad[:3]}")
            await asyncio.sleep(0.05)


def dumps(value: Any) -> str:
    """Compact JSON."""
    return json.dumps(value, separators=(",", ":"))


async def serve(port: int, secrets: list[str]) -> None:
    """Run a receiver until killed (the benchmark's receiver process)."""
    rx = Receiver(secrets=secrets, port=port)
    await rx.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    import sys

    asyncio.run(serve(int(sys.argv[1]), sys.argv[2:]))
