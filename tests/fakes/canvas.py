"""A faithful fake Canvas LMS: a real aiohttp server on 127.0.0.1:0 with in-memory state and switches.

Behaviour follows ../shared/reference/lms-contracts.md §1: Bearer auth with Canvas's 401 bodies and
`WWW-Authenticate`, opaque `page=bookmark:…` Link headers with rel=current/next/first, per_page capping,
a leaky-bucket throttle answering 403 text/plain `403 Forbidden (Rate Limit Exceeded)\\n` (or 429),
`X-Request-Cost`/`X-Rate-Limit-Remaining` floats, 404 `errors[]` bodies and the string-id Accept header.
Switches: `down()` (connection refused, or 503), `up()`, `slow(seconds)`, `fail_share(p)`; bad input:
`fail_next(n, kind, route)` (`html` page or a `huge` 10 MB body), `link_loop = route` (its rel=next points
back at the page itself), `rewrite[route] = fn(data)` (missing fields, wrong types, duplicates across pages).
"""

from __future__ import annotations

import base64
import bisect
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from tests.fakes.base import FakeServer, huge_json
from tests.fakes.canvas_state import CanvasState

FAKE_KEY: web.AppKey[FakeCanvas] = web.AppKey("fake_canvas")
THROTTLE_BODY = "403 Forbidden (Rate Limit Exceeded)\n"
STRING_IDS = "application/json+canvas-string-ids"
NOT_FOUND = {"errors": [{"message": "The specified resource does not exist."}]}
UNAUTHENTICATED = {"status": "unauthenticated", "errors": [{"message": "user authorization required"}]}
INVALID_TOKEN = {"errors": [{"message": "Invalid access token."}]}
UNAUTHORIZED = {
    "status": "unauthorized",
    "errors": [{"message": "user not authorized to perform that action"}],
}
SERVER_ERROR = {"errors": [{"message": "An error occurred.", "error_code": "internal_server_error"}]}


@dataclass
class Bucket:
    """Canvas's leaky bucket (app/middleware/request_throttle.rb): hwm, outflow/s, up-front cost."""

    hwm: float = 600.0
    outflow: float = 10.0
    up_front: float = 50.0
    cost: float = 1.0
    level: float = 0.0
    at: float = field(default_factory=time.monotonic)

    def leak(self) -> None:
        """Drain the bucket by the outflow since the last look."""
        now = time.monotonic()
        self.level = max(0.0, self.level - (now - self.at) * self.outflow)
        self.at = now

    @property
    def remaining(self) -> float:
        """What Canvas reports in X-Rate-Limit-Remaining."""
        return max(0.0, self.hwm - self.level)


def encode_bookmark(value: Any) -> str:
    """Opaque bookmark like Canvas's `bookmark:WzEwXQ` (base64 of a JSON array, no padding)."""
    raw = base64.urlsafe_b64encode(json.dumps([value]).encode()).decode().rstrip("=")
    return f"bookmark:{raw}"


def decode_bookmark(page: str) -> Any | None:
    """Inverse of encode_bookmark; None for `first`, a number or garbage (Canvas restarts then)."""
    if not page.startswith("bookmark:"):
        return None
    raw = page.removeprefix("bookmark:")
    try:
        return json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))[0]
    except (ValueError, IndexError, TypeError):
        return None


class FakeCanvas(FakeServer):
    """The fake server: state, switches and counters; start with `await fake.start()`."""

    def __init__(
        self,
        *,
        token: str = "canvas-token",  # noqa: S107
        account_id: int = 1,
        max_per_page: int = 100,
        seed: int = 7,
    ) -> None:
        super().__init__(seed=seed)
        self.state = CanvasState(account_id=account_id)
        self.tokens = {token}
        self.max_per_page = max_per_page
        self.bucket = Bucket()
        self.throttle_enabled = False
        self.throttle_status = 403
        self.is_down = False
        self.down_mode = "refuse"
        self.sis_imports: dict[int, dict[str, Any]] = {}
        self.sis_import_posts = 0
        self.failures: list[tuple[str, str | None]] = []  # (kind, route or None) of answers to spoil
        self.link_loop: str | None = None  # route whose rel=next points back at the page itself
        self.rewrite: dict[str, Callable[[Any], Any]] = {}  # route name → edit of the JSON it renders
        self.responses: Counter[int] = Counter()
        self.app = self._make_app()

    # ---- lifecycle and switches -------------------------------------------------------------
    async def down(self, mode: str = "refuse") -> None:
        """Uplink gone: `refuse` closes the listener (connection refused), `503` answers 503."""
        self.is_down, self.down_mode = True, mode
        if mode == "refuse":
            await self.close_listener()

    async def up(self) -> None:
        """Uplink back on the same port."""
        self.is_down = False
        await self.reopen_listener()

    def fail_next(self, count: int, kind: str, route: str | None = None) -> None:
        """Spoil the next `count` answers (of `route`, e.g. "GET /api/v1/accounts/{account_id}/users"):
        `html` (200 with a proxy's login page) or `huge` (a 10 MB JSON body)."""
        self.failures.extend([(kind, route)] * count)

    def throttle(self, *, hwm: float, outflow: float, cost: float = 1.0, status: int = 403) -> None:
        """Turn on the leaky bucket with these settings (403 like old Canvas or 429 like new)."""
        self.throttle_enabled = True
        self.throttle_status = status
        self.bucket = Bucket(hwm=hwm, outflow=outflow, cost=cost, up_front=min(50.0, hwm / 4))

    # ---- plumbing ------------------------------------------------------------------------------
    def _make_app(self) -> web.Application:
        from tests.fakes.canvas_routes import add_routes
        from tests.fakes.canvas_sis import routes as sis_routes

        app = web.Application(middlewares=[self._middleware])
        app[FAKE_KEY] = self
        app.add_routes(sis_routes)
        add_routes(app)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        route = request.match_info.route.resource
        name = f"{request.method} {route.canonical if route is not None else request.path}"
        self.requests[name] += 1
        response = await self._answer(request, handler, name)
        self.responses[response.status] += 1
        return response

    async def _answer(self, request: web.Request, handler: Any, name: str) -> web.StreamResponse:
        if self.is_down:
            if self.down_mode == "refuse":
                self.drop(request)  # a keep-alive connection opened before the cut dies like a dead link
            return web.json_response({"errors": [{"message": "Service Unavailable"}]}, status=503)
        await self.pause()
        auth = self._authenticate(request)
        if auth is not None:
            return auth
        spoiled = self._spoil(name)
        if spoiled is not None:
            return spoiled
        if self.failing_now():  # 500, 403 throttling or 429, chosen at random
            kind = self.rng.choice(["500", "403", "429"])
            self.injected[kind] += 1
            if kind == "500":
                return web.json_response({**SERVER_ERROR, "error_report_id": self.rng.randint(1, 10**6)}, status=500)
            return self._throttled(int(kind))
        if self.throttle_enabled:
            self.bucket.leak()
            if self.bucket.level + self.bucket.up_front > self.bucket.hwm:
                self.injected["bucket"] += 1
                return self._throttled(self.throttle_status)
            self.bucket.level += self.bucket.up_front
        try:
            response = await handler(request)
        finally:
            if self.throttle_enabled:
                self.bucket.level += self.bucket.cost - self.bucket.up_front
        if request.method != "GET":
            self.lose_answer(request)  # the write happened, then the link died before the answer got out
        response.headers["X-Request-Cost"] = f"{self.bucket.cost:.4f}"
        response.headers["X-Rate-Limit-Remaining"] = f"{self.bucket.remaining:.1f}"
        return response

    def _spoil(self, name: str) -> web.Response | None:
        for i, (kind, route) in enumerate(self.failures):
            if route is None or route == name:
                del self.failures[i]
                self.injected[kind] += 1
                if kind == "huge":
                    return huge_json()
                return web.Response(text="<html><body><form action=/login>Sign in to the network</form></body></html>",
                                    content_type="text/html")
        return None

    def _throttled(self, status: int) -> web.Response:
        headers = {"X-Rate-Limit-Remaining": "0.0"}
        if status == 429:
            headers["Retry-After"] = "1"
        return web.Response(
            status=status, text=THROTTLE_BODY, charset="utf-8", content_type="text/plain", headers=headers
        )

    def _authenticate(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else request.query.get("access_token")
        challenge = {"WWW-Authenticate": 'Bearer realm="canvas-lms"'}
        if not token:
            return web.json_response(UNAUTHENTICATED, status=401, headers=challenge)
        if token not in self.tokens:
            return web.json_response(INVALID_TOKEN, status=401, headers=challenge)
        account = request.match_info.get("account_id")
        if account is not None and account != str(self.state.account_id):
            return web.json_response(UNAUTHORIZED, status=401)
        return None

    # ---- helpers for handlers ------------------------------------------------------------------
    def render(
        self, request: web.Request, data: Any, status: int = 200, headers: dict[str, str] | None = None
    ) -> web.Response:
        """JSON answer; ids become strings when the client asked for canvas-string-ids."""
        route = request.match_info.route.resource
        name = f"{request.method} {route.canonical if route is not None else request.path}"
        if name in self.rewrite:
            data = self.rewrite[name](data)
        if STRING_IDS in request.headers.get("Accept", ""):
            data = _stringify_ids(data)
        return web.json_response(data, status=status, headers=headers)

    def not_found(self, request: web.Request) -> web.Response:
        """Canvas's 404 body."""
        return self.render(request, NOT_FOUND, status=404)

    def page(self, request: web.Request, items: list[dict[str, Any]]) -> web.Response:
        """One page of `items` (in rising id order) with Canvas's Link header and opaque bookmarks."""
        try:
            per_page = int(request.query.get("per_page", "10"))
        except ValueError:
            per_page = 10
        per_page = max(1, min(per_page, self.max_per_page))
        after = decode_bookmark(request.query.get("page", "first"))
        # Lists come from the state dicts, whose ids rise in insertion order: already sorted, so a
        # bookmark is found by bisection instead of a scan (the benchmark pages through 150,000 users).
        ordered = items
        start = 0 if after is None else bisect.bisect_right(ordered, after, key=lambda item: item["id"])
        chunk = ordered[start : start + per_page]
        remaining = len(ordered) - start
        kept = [(k, v) for k, v in request.query.items() if k not in ("page", "per_page", "access_token", "api_key")]
        base = f"{self.base_url}{request.path}"

        def link(page: str, rel: str) -> str:
            query = urlencode([*kept, ("page", page), ("per_page", str(per_page))])
            return f'<{base}?{query}>; rel="{rel}"'

        links = [link(request.query.get("page", "first"), "current")]
        route = request.match_info.route.resource
        if self.link_loop and self.link_loop == f"{request.method} {route.canonical if route is not None else ''}":
            links.append(link(request.query.get("page", "first"), "next"))  # next = this page: never ends
        elif remaining > per_page:
            links.append(link(encode_bookmark(chunk[-1]["id"]), "next"))
        links.append(link("first", "first"))
        return self.render(request, chunk, headers={"Link": ",".join(links)})


def _stringify_ids(data: Any) -> Any:
    if isinstance(data, list):
        return [_stringify_ids(item) for item in data]
    if isinstance(data, dict):
        return {
            k: (str(v) if (k == "id" or k.endswith("_id")) and isinstance(v, int) else _stringify_ids(v))
            for k, v in data.items()
        }
    return data
