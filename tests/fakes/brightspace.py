"""A faithful fake D2L Brightspace (Valence REST API): an aiohttp server on 127.0.0.1:0 with in-memory state.

Behaviour follows ../shared/reference/lms-contracts.md §3 and Brightspace's SDKs:
- ID-key auth: `x_a`..`x_t` query parameters; signatures are recomputed like Brightspace does (base string
  `METHOD&/lowercased/decoded/path&x_t`, HMAC-SHA256, base64url without padding). A wrong signature or an
  unknown app or user answers 403 text/plain `Invalid token`; a timestamp more than `window_s` away from the
  server's clock answers 403 `Timestamp out of range\\r\\n<server unix time>`. The server clock runs
  `clock_ahead_s` (default 900 s) ahead of the machine's, so every ID-key client must learn the skew.
- OAuth 2.0: `POST /core/connect/token` (client via HTTP Basic or form) with `grant_type=refresh_token` answers
  `{access_token, token_type, expires_in, refresh_token, scope}` and rotates the refresh token. `rotation`:
  "on_use" (default) revokes the old refresh token once the new pair is first used, "strict" revokes it at
  once. A dead refresh token answers 400 `{"error": "invalid_grant"}`; a bad access token 401.
- `GET /d2l/api/versions/`; routes under `/d2l/api/lp/<v>/` and `/d2l/api/le/<v>/` (unknown versions 404).
- PagedResultSet (`PagingInfo.Bookmark`/`HasMoreItems`, `?bookmark=`) for users, org units and classlists;
  ObjectListPage (`Objects`, absolute `Next`) for grade values.
- 429 with only `Retry-After` when throttled; `X-Rate-Limit-Remaining`/`X-Rate-Limit-Reset`/`X-Request-Cost`
  on other answers.

Interface for tests (all plain attributes or methods, usable from any test):
- `await FakeBrightspace().start()`, `await fake.stop()`, `fake.base_url`, `fake.id_key_credentials()`,
  `fake.oauth_credentials()` (a fresh refresh token and the fake's token_url).
- State: `fake.add_user(...)`, `fake.add_course(...)`, `fake.enroll(ou, user_id)`, `fake.add_grade(...)`,
  `fake.set_grade(...)`, `fake.users`, `fake.enrollments`, `fake.user_creates` (Counter by OrgDefinedId),
  `fake.enroll_creates`, `fake.requests` (Counter by route), `fake.rejected_writes`.
- Faults: `fake.down = True` (drop every connection), `await fake.go_down()`/`await fake.go_up()` (close or
  reopen the listener), `fake.fail_next(n, status)` (the next n API calls answer `status`),
  `fake.fail_share(p)` (that share of API calls answer 500, 503 or 429 at random, counted in `fake.injected`),
  `fake.throttle_next(n, retry_after)` (429s), `fake.lose_answers(n)` (apply n writes, then drop the
  connection), `fake.slow(seconds)`, `fake.bad_users = "missing_fields" | "string_ids" | "wrong_types" |
  "duplicates" | "loop" | "html" | "huge" | "huge_stream"` (what the users listing sends instead of a proper page),
  `fake.foreign_next = "http://..."` (grade values' Next points elsewhere), `fake.on_refresh` (a callable run
  after a refresh is decided and before its answer is sent).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from tests.fakes.base import FakeServer

FAKE_KEY: web.AppKey[FakeBrightspace] = web.AppKey("fake_brightspace")
VERSIONS = {"lp": ["1.40", "1.45", "1.46"], "le": ["1.70", "1.74", "1.75"]}
ROOT_ORG = 6606
LEARNER_ROLE = 110
INSTRUCTOR_ROLE = 109


def valence_sign(data: str, key: str) -> str:
    """Brightspace's signature: b64url(HMAC-SHA256(key, data)) without padding."""
    digest = hmac.new(key.encode(), data.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def plain(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    """Brightspace's plain-text error answers."""
    return web.Response(status=status, text=text, content_type="text/plain", headers=headers)


class FakeBrightspace(FakeServer):
    """The fake server: state, switches and counters."""

    def __init__(self, *, page_size: int = 100, clock_ahead_s: int = 900, window_s: int = 300,
                 rotation: str = "on_use", seed: int = 7) -> None:
        super().__init__(seed=seed)
        self.page_size = page_size
        self.clock_ahead_s, self.window_s = clock_ahead_s, window_s
        self.rotation = rotation
        self.apps = {"app-id-1": "app-key-secret-1"}
        self.user_tokens = {"user-id-1": "user-key-secret-1"}
        self.clients = {"client-1": "client-secret-1"}
        self.refresh_tokens: dict[str, str] = {}  # live refresh token -> state ("live", or "pending:<old>")
        self.access_tokens: dict[str, tuple[float, str]] = {}  # token -> (expires at, refresh token it came with)
        self.access_lifetime_s = 3600
        self.refreshes = 0
        self.on_refresh: Callable[[], Any] | None = None
        self.users: dict[int, dict[str, Any]] = {}
        self.org_units: dict[int, dict[str, Any]] = {}
        self.enrollments: dict[tuple[int, int], int] = {}  # (org unit, user) -> role id
        self.grades: dict[int, list[dict[str, Any]]] = {}  # org unit -> grade objects
        self.grade_values: dict[tuple[int, int], dict[int, dict[str, Any]]] = {}  # (ou, grade) -> user -> value
        self.next_id = 1000
        self.user_creates: Counter[str] = Counter()
        self.enroll_creates: Counter[tuple[int, int]] = Counter()
        self.rejected_writes: list[tuple[str, Any]] = []
        self.responses: Counter[int] = Counter()
        self.down = False
        self.failures: list[int] = []
        self.throttles: list[float] = []
        self.bad_users: str | None = None
        self.foreign_next: str | None = None
        self.app = self._make_app()

    # ---- lifecycle and switches -----------------------------------------------------------------
    @property
    def token_url(self) -> str:
        """The OAuth token endpoint."""
        return f"{self.base_url}/core/connect/token"

    def server_time(self) -> int:
        """The server's clock (ahead of the machine's)."""
        return int(time.time()) + self.clock_ahead_s

    async def go_down(self) -> None:
        """Close the listener (connection refused) and drop open connections."""
        self.down = True
        await self.close_listener()

    async def go_up(self) -> None:
        """Listen again on the same port."""
        self.down = False
        await self.reopen_listener()

    def fail_next(self, count: int, status: int = 503) -> None:
        """The next `count` API calls answer `status`."""
        self.failures.extend([status] * count)

    def throttle_next(self, count: int, retry_after: float = 1.0) -> None:
        """The next `count` API calls answer 429 with only Retry-After."""
        self.throttles.extend([retry_after] * count)

    def id_key_credentials(self) -> dict[str, str]:
        """Valid ID-key credentials."""
        return {"app_id": "app-id-1", "app_key": "app-key-secret-1", "user_id": "user-id-1",
                "user_key": "user-key-secret-1"}

    def oauth_credentials(self) -> dict[str, str]:
        """Valid OAuth credentials with a fresh refresh token."""
        token = "rt-" + secrets.token_urlsafe(12)
        self.refresh_tokens[token] = "live"
        return {"client_id": "client-1", "client_secret": "client-secret-1", "refresh_token": token,
                "token_url": self.token_url}

    # ---- state -----------------------------------------------------------------------------------
    def _id(self) -> int:
        self.next_id += 1
        return self.next_id

    def add_user(self, first: str, last: str = "", *, org_defined_id: str | None = None,
                 user_name: str | None = None, email: str | None = None, active: bool = True) -> dict[str, Any]:
        """A user as POST users/ would create it."""
        uid = self._id()
        user = {"OrgId": ROOT_ORG, "UserId": uid, "FirstName": first, "MiddleName": None, "LastName": last,
                "UserName": user_name or f"user{uid}", "ExternalEmail": email, "OrgDefinedId": org_defined_id,
                "UniqueIdentifier": user_name or f"user{uid}", "Activation": {"IsActive": active},
                "DisplayName": f"{first} {last}".strip(), "LastAccessedDate": None, "Pronouns": None}
        self.users[uid] = user
        return user

    def add_course(self, name: str, code: str = "") -> dict[str, Any]:
        """A course offering below the root org unit."""
        ou = self._id()
        unit = {"Identifier": str(ou), "Name": name, "Code": code or f"C{ou}",
                "Type": {"Id": 3, "Code": "Course Offering", "Name": "Course Offering"}}
        self.org_units[ou] = unit
        self.grades[ou] = []
        return unit

    def enroll(self, ou: int, user_id: int, role_id: int = LEARNER_ROLE) -> None:
        """Enroll a user in an org unit."""
        self.enrollments[(ou, user_id)] = role_id

    def add_grade(self, ou: int, name: str, max_points: float = 10.0, grade_type: str = "Numeric") -> int:
        """A grade object of an org unit."""
        gid = self._id()
        self.grades[ou].append({"Id": gid, "Name": name, "ShortName": name[:10], "GradeType": grade_type,
                                "CategoryId": 0, "Description": {"Text": "", "Html": ""}, "Weight": 0,
                                "AssociatedTool": None, "IsHidden": False, "MaxPoints": max_points})
        self.grade_values[(ou, gid)] = {}
        return gid

    def set_grade(self, ou: int, gid: int, user_id: int, points: float, modified: str = "2026-11-20T10:00:00.000Z"
                  ) -> None:
        """A learner's grade on a grade object."""
        maximum = next(g for g in self.grades[ou] if g["Id"] == gid)["MaxPoints"]
        self.grade_values[(ou, gid)][user_id] = {
            "DisplayedGrade": f"{points} / {maximum}", "GradeObjectIdentifier": str(gid),
            "GradeObjectName": "", "GradeObjectType": 1, "GradeObjectTypeName": "Numeric",
            "Comments": {"Text": "", "Html": ""}, "PrivateComments": {"Text": "", "Html": ""},
            "LastModified": modified, "LastModifiedBy": 1, "ReleasedDate": None,
            "PointsNumerator": points, "PointsDenominator": maximum, "WeightedNumerator": None,
            "WeightedDenominator": None}

    # ---- plumbing --------------------------------------------------------------------------------
    def _make_app(self) -> web.Application:
        from tests.fakes.brightspace_routes import routes

        app = web.Application(middlewares=[self._middleware], client_max_size=1024 * 1024)
        app[FAKE_KEY] = self
        app.add_routes(routes)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        route = request.match_info.route.resource
        name = f"{request.method} {route.canonical if route is not None else request.path}"
        self.requests[name] += 1
        response = await self._answer(request, handler)
        self.responses[response.status] += 1
        return response

    async def _answer(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.down:
            self.drop(request)
        await self.pause()
        if request.path == "/core/connect/token":
            return await handler(request)
        if self.throttles:
            return plain(429, "", headers={"Retry-After": f"{self.throttles.pop(0):g}"})
        if self.failures:
            status = self.failures.pop(0)
            return web.Response(status=status, text="<html><body>Service Unavailable</body></html>",
                                content_type="text/html")
        if self.failing_now():  # 500, 503 or 429, chosen at random
            status = self.rng.choice([500, 503, 429])
            self.injected[str(status)] += 1
            if status == 429:
                return plain(429, "", headers={"Retry-After": "1"})
            return web.Response(status=status, text="<html><body>Error</body></html>", content_type="text/html")
        refused = self._authenticate(request)
        if refused is not None:
            return refused
        response = await handler(request)
        if request.method != "GET" and response.status < 300:
            self.lose_answer(request)
        response.headers["X-Rate-Limit-Remaining"] = "49990"
        response.headers["X-Rate-Limit-Reset"] = "60"
        response.headers["X-Request-Cost"] = "10"
        return response

    def _authenticate(self, request: web.Request) -> web.Response | None:
        query = request.query
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            return self._bearer(header[7:].strip())
        if "x_a" in query:
            return self._id_key(request)
        if request.path == "/d2l/api/versions/":
            return None  # anonymous
        return plain(403, "")

    def _bearer(self, token: str) -> web.Response | None:
        found = self.access_tokens.get(token)
        if found is None or found[0] < time.time():
            return web.Response(status=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        self._confirm(found[1])
        return None

    def _confirm(self, refresh_token: str) -> None:
        """The pair issued with this refresh token was used: its predecessor dies ("on_use" rotation)."""
        state = self.refresh_tokens.get(refresh_token, "")
        if state.startswith("pending:"):
            for other in [t for t, s in self.refresh_tokens.items() if s == state and t != refresh_token]:
                del self.refresh_tokens[other]  # siblings issued from the same predecessor die too
            self.refresh_tokens.pop(state.removeprefix("pending:"), None)
            self.refresh_tokens[refresh_token] = "live"

    def _id_key(self, request: web.Request) -> web.Response | None:
        q = request.query
        app_key, user_key = self.apps.get(q.get("x_a", "")), self.user_tokens.get(q.get("x_b", ""))
        stamp = q.get("x_t", "")
        if app_key is None or user_key is None or not stamp.isdigit():
            return plain(403, "Invalid token")
        base = f"{request.method.upper()}&{unquote(request.path).lower()}&{stamp}"
        if not (hmac.compare_digest(q.get("x_c", ""), valence_sign(base, app_key))
                and hmac.compare_digest(q.get("x_d", ""), valence_sign(base, user_key))):
            return plain(403, "Invalid token")
        now = self.server_time()
        if abs(int(stamp) - now) > self.window_s:
            return plain(403, f"Timestamp out of range\r\n{now}")
        return None

    # ---- OAuth -----------------------------------------------------------------------------------
    async def token(self, request: web.Request) -> web.Response:
        """POST /core/connect/token: refresh_token grant with rotation."""
        form = await request.post()
        client_id, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("basic "):
            raw = base64.b64decode(header[6:]).decode()
            client_id, _, secret = raw.partition(":")
        if self.clients.get(client_id) != secret:
            return web.json_response({"error": "invalid_client"}, status=401)
        if form.get("grant_type") != "refresh_token":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        old = str(form.get("refresh_token", ""))
        state = self.refresh_tokens.get(old)
        if state is None:
            return web.json_response({"error": "invalid_grant"}, status=400)
        self._confirm(old)  # using a pending token confirms it
        new_refresh, access = "rt-" + secrets.token_urlsafe(12), "at-" + secrets.token_urlsafe(16)
        if self.rotation == "strict":
            self.refresh_tokens.pop(old, None)
            self.refresh_tokens[new_refresh] = "live"
        else:
            self.refresh_tokens[new_refresh] = f"pending:{old}"
        self.access_tokens[access] = (time.time() + self.access_lifetime_s, new_refresh)
        self.refreshes += 1
        if self.on_refresh is not None:
            result = self.on_refresh()
            if asyncio.iscoroutine(result):
                await result
        return web.json_response({"access_token": access, "token_type": "Bearer",
                                  "expires_in": self.access_lifetime_s, "refresh_token": new_refresh,
                                  "scope": "core:*:*"})

    def live_refresh_tokens(self) -> set[str]:
        """Refresh tokens that would still be accepted."""
        return set(self.refresh_tokens)
