"""A faithful fake Moodle: web services REST on 127.0.0.1:0 with in-memory state and fault switches.

Behaviour follows ../shared/reference/lms-contracts.md §4: one endpoint `/webservice/rest/server.php`
(GET or POST) taking `wstoken`, `wsfunction`, `moodlewsrestformat` and PHP bracket parameters
(`users[0][username]`); JSON only when `moodlewsrestformat=json`, XML otherwise; errors as HTTP 200 with
`{"exception", "errorcode", "message"}` (invalidtoken, accessexception for a function outside the
service, invalidrecord for an unknown function, invalidparameter); the site course id 1 in
`core_course_get_courses`; `limitfrom`/`limitnumber` paging of enrolled users.
Switches: `down()` (refused, or 503), `up()`, `slow(s)`, `fail_share(p)`, `fail_next(n, kind)` (`html`,
`huge`, `500`, `exception:<code>`), `paging_loop` (limitfrom ignored), `lose_answers(n)`, `rewrite[fn]`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web

from tests.fakes.base import FakeServer, huge_json
from tests.fakes.moodle_state import FUNCTIONS, WRITES, MoodleError, MoodleState

ENDPOINT = "/webservice/rest/server.php"
BRACKETS = re.compile(r"\[([^\]]*)\]")
LOGIN_PAGE = ("<!DOCTYPE html><html><head><title>Log in to the site</title></head><body>"
              "<form action=\"/login/index.php\" method=\"post\"></form></body></html>")
ERROR_500 = "<!DOCTYPE html><html><body><h1>Internal Server Error</h1></body></html>"


def parse_php(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Fold `a[0][b]=x` pairs into nested dicts, as PHP does with $_POST."""
    out: dict[str, Any] = {}
    for name, value in pairs:
        head = name.split("[", 1)[0]
        keys = [head, *BRACKETS.findall(name[len(head):])]
        node = out
        for key in keys[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[keys[-1]] = value
    return out


def to_xml(data: Any) -> str:
    """Moodle's REST XML: RESPONSE › SINGLE/MULTIPLE › KEY name › VALUE."""

    def node(value: Any) -> str:
        if isinstance(value, dict):
            keys = "".join(f"<KEY name={quoteattr(str(k))}>{node(v)}</KEY>" for k, v in value.items())
            return f"<SINGLE>{keys}</SINGLE>"
        if isinstance(value, list):
            return "<MULTIPLE>" + "".join(node(v) for v in value) + "</MULTIPLE>"
        if value is None:
            return '<VALUE null="null"/>'
        if isinstance(value, bool):
            value = int(value)
        return f"<VALUE>{escape(str(value))}</VALUE>"

    return f'<?xml version="1.0" encoding="UTF-8" ?>\n<RESPONSE>\n{node(data)}</RESPONSE>\n'


def xml_error(error: MoodleError) -> str:
    """An exception in Moodle's XML format."""
    return (f'<?xml version="1.0" encoding="UTF-8" ?>\n<EXCEPTION class={quoteattr(error.exception)}>\n'
            f"<ERRORCODE>{escape(error.errorcode)}</ERRORCODE>\n<MESSAGE>{escape(error.message)}</MESSAGE>\n"
            "</EXCEPTION>\n")


class FakeMoodle(FakeServer):
    """The fake site: state, switches and counters; start with `await fake.start()`."""

    def __init__(self, *, token: str = "moodletoken", seed: int = 11) -> None:  # noqa: S107
        super().__init__(seed=seed)
        self.state = MoodleState()
        self.tokens = {token}
        self.service_functions = set(FUNCTIONS)  # functions the token's service allows
        self.debug = False  # site debugging: error bodies carry debuginfo (the reason of invalidparameter)
        self.failures: list[tuple[str, str | None]] = []  # (kind, function or None) of answers to spoil
        self.paging_loop = False
        self.is_down = False
        self.down_mode = "refuse"
        self.rewrite: dict[str, Callable[[Any], Any]] = {}
        self.app = web.Application(client_max_size=4 * 1024 * 1024)
        self.app.router.add_route("GET", ENDPOINT, self._handle)
        self.app.router.add_route("POST", ENDPOINT, self._handle)

    # ---- lifecycle and switches -------------------------------------------------------------
    async def down(self, mode: str = "refuse") -> None:
        """Uplink gone: `refuse` closes the listener, `503` answers a proxy's 503 page."""
        self.is_down, self.down_mode = True, mode
        if mode == "refuse":
            await self.close_listener()

    async def up(self) -> None:
        """Uplink back on the same port."""
        self.is_down = False
        await self.reopen_listener()

    def fail_next(self, count: int, kind: str, function: str | None = None) -> None:
        """Spoil the next `count` answers (of `function`, if given): `html` (200 login page), `huge` (10 MB),
        `500`, `503`, `exception:<code>`."""
        self.failures.extend([(kind, function)] * count)

    # ---- the endpoint --------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.is_down:
            if self.down_mode == "refuse":
                self.drop(request)
            return web.Response(status=503, text="<html><body>503 Service Unavailable</body></html>",
                                content_type="text/html")
        await self.pause()
        pairs = list(request.query.items())
        if request.method == "POST":
            pairs += [(k, v) for k, v in (await request.post()).items() if isinstance(v, str)]
        params = parse_php(pairs)
        function = str(params.pop("wsfunction", ""))
        as_json = params.pop("moodlewsrestformat", "xml") == "json"
        token = str(params.pop("wstoken", ""))
        self.requests[function] += 1
        spoiled = self._spoil(function)
        if spoiled is not None:
            return spoiled
        try:
            if token not in self.tokens:
                raise MoodleError("moodle_exception", "invalidtoken", "Invalid token - token not found")
            handler = FUNCTIONS.get(function)
            if handler is None:
                raise MoodleError("dml_missing_record_exception", "invalidrecord",
                                  "Can't find data record in database table external_functions.")
            if function not in self.service_functions:
                raise MoodleError("webservice_access_exception", "accessexception", "Access control exception")
            if function == "core_enrol_get_enrolled_users" and self.paging_loop:
                result = self.state.enrolled_users(params, ignore_limitfrom=True)
            else:
                result = handler(self.state, params)
        except MoodleError as error:
            if function in WRITES:
                self.state.rejected_writes.append({"function": function, **error.body()})
            if as_json:
                return web.json_response(error.body(self.debug))
            return web.Response(text=xml_error(error), content_type="application/xml")
        if function in self.rewrite:
            result = self.rewrite[function](result)
        if function in WRITES:
            self.lose_answer(request)
        if not as_json:
            return web.Response(text=to_xml(result), content_type="application/xml")
        # Moodle's REST server sends "null" for functions without a return value.
        return web.Response(text=json.dumps(result), content_type="application/json")

    def _spoil(self, function: str) -> web.Response | None:
        kind = None
        for i, (_kind, only) in enumerate(self.failures):
            if only is None or only == function:
                kind = self.failures.pop(i)[0]
                break
        if kind is None and self.failing_now():  # a 503 page or a database exception, chosen at random
            kind = self.rng.choice(["503", "exception:dmlreadexception"])
        if kind is None:
            return None
        self.injected[kind] += 1
        if kind == "html":
            return web.Response(text=LOGIN_PAGE, content_type="text/html")
        if kind == "huge":
            return huge_json()
        if kind in ("500", "503"):
            return web.Response(status=int(kind), text=ERROR_500, content_type="text/html")
        code = kind.removeprefix("exception:")
        return web.json_response({"exception": "moodle_exception", "errorcode": code, "message": f"error/{code}"})
