"""The content origin's connections: plain reads of hot entries answered here, everything else by aiohttp.

A class reading the library sends the content origin thousands of requests a second that all look alike:
GET /content/{book}/{path} with the same pass cookie, for entries already in memory. Through aiohttp each
costs about four times the work of answering it, so each connection is this protocol first. It parses a
request head itself only when the head is plain (HTTP/1.1, keep-alive, no body, no Range, headers well
formed) and asks the hot lane (`hotlane.py`), which makes the same access decisions and sends the same
headers as the full path, or declines.

Connections are *packed* (with more than one HTTP process): only the primary listens, and it serves every
connection while its event loop has headroom, because a class's requests arrive one by one and cost
least in one process woken often (most of a lone request's cost is the wakeup and cold caches). When the
loop uses more than `content.pack_busy_fraction` of a core in two 25 ms windows in a row, the front
moves connections that are idle at the end of a turn (nothing buffered, nothing unwritten, no request
with aiohttp) to the HTTP workers (`appliance.web.handoff`): the workers' share of those open when that
busy spell began, and their share of those accepted during it. The spell ends when the demand falls
below half the fraction.

Anything else goes to aiohttp, which stays the authority on HTTP:
- a plain request the lane declines (a miss, an error, a redirect, the pass exchange, HEAD) is *handed*
  to aiohttp's own handler for this connection, fed the request's exact bytes; later bytes wait here
  until aiohttp has written that response, then this protocol reads again (so responses keep their order);
- anything it does not fully understand (a body, `Connection: close`, HTTP/1.0, an odd header, a head
  over 64 KiB) gives aiohttp the connection for good, bytes and all, and aiohttp answers as it always did.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import re
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, cast

from aiohttp import web

from appliance.content import metrics
from appliance.content.hotlane import Answer, HotLane
from appliance.keys import CONFIG
from appliance.observability.httpmetrics import BUFFER
from appliance.observability.logging import ACCESS
from appliance.web.handoff import Handoff
from appliance.web.middlewares import request_id

log = logging.getLogger(__name__)

MAX_HEAD = 64 * 1024  # aiohttp's own line limit; a longer head is aiohttp's to refuse
MAX_WAITING = 256 * 1024  # bytes held while a response is pending before the client is made to wait
MAX_HELD = 64 * 1024  # response bytes held for the end of the loop's turn before they are written at once
KEEPALIVE_S = 75.0  # aiohttp's default: an idle (or never finished) connection is closed after this
PACK_WINDOW_S = 0.025  # how often a packing primary measures its loop's demand (short: a burst waits little)
# Busy windows in a row before connections move: a full load moves them after 50 ms, while one busy window
# (a garbage collection, a few sign-ins at once) does not send a class's connections to a cold process,
# where each of their requests would cost several times more.
PACK_BUSY_WINDOWS = 2
ROUTE = "/content/{book}/{path}"  # the route label the full path's metrics use for these requests
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TARGET = re.compile(rb"/[\x21-\x7e]*")  # a path starting with /, visible ASCII only (no space, control, DEL)
# Headers this protocol reads; any of them twice, or with bytes it does not expect, goes to aiohttp.
_READ = frozenset({b"host", b"cookie", b"accept-encoding", b"if-none-match", b"connection", b"content-length",
                   b"transfer-encoding", b"range", b"if-range", b"x-request-id", b"expect", b"upgrade"})
# Any of these makes the request one the lane does not answer (handed to aiohttp, which does).
_NOT_PLAIN = (b"range", b"if-range", b"x-request-id", b"expect", b"upgrade")


class Mode(enum.Enum):
    """Who reads the connection's bytes."""

    OWN = "own"  # this protocol parses and answers
    HANDED = "handed"  # aiohttp is answering one request; later bytes wait here
    AIOHTTP = "aiohttp"  # aiohttp has the connection for good


class Head(NamedTuple):
    """What this protocol needs of a request head."""

    method: bytes
    target: str
    fields: dict[bytes, str]
    keep_alive: bool
    has_body: bool


def read_head(raw: bytes) -> Head | None:
    """The request head (without its blank line), or None when it is not plain HTTP/1.1 through and through."""
    line, _, rest = raw.partition(b"\r\n")
    parts = line.split(b" ")
    if len(parts) != 3 or parts[2] != b"HTTP/1.1" or not _TOKEN.fullmatch(parts[0]):
        return None
    method, target = parts[0], parts[1]
    if not _TARGET.fullmatch(target):
        return None
    fields: dict[bytes, str] = {}
    if rest:
        for item in rest.split(b"\r\n"):
            name, sep, value = item.partition(b":")
            # Nearly every header name is letters, digits and dashes: checked in C; the rest by the pattern.
            if not sep or not (name.replace(b"-", b"").isalnum() and name.isascii() or _TOKEN.fullmatch(name)):
                return None  # obs-fold, space before the colon, a bare line: aiohttp's to judge
            if b"\r" in value or b"\x00" in value:
                return None
            key = name.lower()
            if key in _READ:
                if key in fields or not value.isascii():
                    return None
                fields[key] = value.strip(b" \t").decode("ascii")
    connection = fields.get(b"connection")
    keep_alive = connection is None or all(t.strip().lower() == "keep-alive" for t in connection.split(","))
    length = fields.get(b"content-length")
    if length is not None and not length.isdigit():
        return None
    has_body = b"transfer-encoding" in fields or (length is not None and int(length) != 0)
    return Head(method, target.decode("ascii"), fields, keep_alive, has_body)


class ContentConnection(asyncio.Protocol):
    """One connection to the content origin."""

    def __init__(self, front: ConnectionFront, server: web.Server) -> None:
        self._front = front
        self._server = server
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self.mode = Mode.OWN
        self._aiohttp: Any = None  # aiohttp's RequestHandler for this connection, made on first need
        self._relay: Relay | None = None
        self._writing_paused = False
        self._reading_paused = False
        self._last = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._held: list[bytes] = []  # answers not written yet (see _send)
        self._held_bytes = 0

    # ------------------------------------------------------------------ asyncio's side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio.Transport, but behave as one.
        self.transport = cast(asyncio.Transport, transport)
        sock = self.transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Each response is one write; don't let Nagle hold it for the previous one's ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._front.connections.add(self)
        self._last = self._loop.time()
        self._timer = self._loop.call_later(self._front.keepalive_s, self._check_idle)
        if self._front.spreading:
            self._front.accepted_while_busy()

    def data_received(self, data: bytes) -> None:
        if self.mode is Mode.AIOHTTP:
            self._aiohttp.data_received(data)
            return
        self._buf += data
        if self.mode is Mode.OWN and not self._writing_paused:
            self._serve()
        if len(self._buf) > MAX_WAITING and not self._reading_paused and self.transport is not None:
            self._reading_paused = True  # a client sending faster than it reads waits (pipelining, floods)
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        self.write_held()  # the transport closes after this: what was answered goes first
        if self._aiohttp is not None and self.mode is not Mode.OWN:
            return self._aiohttp.eof_received()  # type: ignore[no-any-return]
        return None

    def pause_writing(self) -> None:
        self._writing_paused = True
        if self._aiohttp is not None:
            self._aiohttp.pause_writing()

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._aiohttp is not None:
            self._aiohttp.resume_writing()
        if self.mode is Mode.OWN:
            self._serve()

    def connection_lost(self, exc: Exception | None) -> None:
        self._front.connections.discard(self)
        self._held.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        handler, self._aiohttp, self._relay = self._aiohttp, None, None
        if handler is not None:
            handler.connection_lost(exc)
        self.transport = None

    # ------------------------------------------------------------------ answering

    def _serve(self) -> None:
        """Answer every complete request buffered, until one must go to aiohttp or the client stops reading."""
        buf = self._buf
        lane = self._front.lane
        while self.mode is Mode.OWN and not self._writing_paused and self.transport is not None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    self._give_up()
                break
            started = time.perf_counter()
            head = read_head(bytes(buf[:end]))
            if head is None or head.has_body or not head.keep_alive:
                self._give_up()
                return
            answer = None
            # No Host: aiohttp's 400, as before.
            if head.method == b"GET" and b"host" in head.fields and not any(k in head.fields for k in _NOT_PLAIN):
                fields = head.fields
                answer = lane.answer(head.target, fields.get(b"cookie"), fields.get(b"accept-encoding"),
                                     fields.get(b"if-none-match"))
            if answer is None:
                request = bytes(buf[:end + 4])
                del buf[:end + 4]
                self._hand(request)
                return
            del buf[:end + 4]
            self._send(answer, started)
        if self._reading_paused and len(buf) <= MAX_WAITING // 2 and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()

    def _send(self, answer: Answer, started: float) -> None:
        assert self.transport is not None
        lane = self._front.lane
        rid = request_id()
        length = b"Content-Length: %d\r\n" % len(answer.body) if answer.status == 200 else b""
        data = b"".join((answer.head, length, lane.date_line(), b"X-Request-ID: ", rid.encode("ascii"),
                         b"\r\n\r\n", answer.body))
        self._last = self._loop.time()
        self._front.answered += 1
        elapsed = time.perf_counter() - started  # the write is a copy into the socket: not waited for
        BUFFER.observe("GET", ROUTE, str(answer.status), elapsed)
        if self._front.access_log:
            ACCESS.add("GET", answer.path, answer.status, elapsed, rid)
        # Held until the loop has answered every request this turn of it brought (ConnectionFront.write_held):
        # a write wakes the client, which often takes this core at once, and each request answered after
        # such a write would wait for the core again (under a full load, for a whole time slice: that was
        # most of the appliance's p99). A few requests a turn cost little; large answers go at once.
        if not self._held:
            self._front.hold(self, self._loop)
        self._held.append(data)
        self._held_bytes += len(data)
        if self._held_bytes >= MAX_HELD:
            self.write_held()

    def write_held(self) -> None:
        """Write the answers held for this turn of the loop (before anything else is written)."""
        if not self._held:
            return
        held, self._held, self._held_bytes = self._held, [], 0
        if self.transport is not None:
            if len(held) == 1:
                self.transport.write(held[0])
            else:
                self.transport.writelines(held)

    # ------------------------------------------------------------------ aiohttp's side

    def _handler(self) -> Any:
        """aiohttp's handler for this connection, connected through a relay (made on first need)."""
        if self._aiohttp is None:
            self._relay = Relay(self)
            self._aiohttp = self._server()
            self._aiohttp.connection_made(self._relay)
        return self._aiohttp

    def _hand(self, request: bytes) -> None:
        """aiohttp answers this one request; handed_back() gives the connection back when it has."""
        self.write_held()  # answers go out in the order of their requests
        self.mode = Mode.HANDED
        self._handler().data_received(request)

    def handed_back(self) -> None:
        """aiohttp has written its response to a handed request and keeps the connection open."""
        if self.mode is not Mode.HANDED:
            return
        self.mode = Mode.OWN
        self._last = self._loop.time()
        if self._buf:
            self._loop.call_soon(self._serve_if_own)

    def _serve_if_own(self) -> None:
        if self.mode is Mode.OWN and not self._writing_paused:
            self._serve()

    def _give_up(self) -> None:
        """aiohttp takes the connection for good, starting with every byte not answered yet."""
        self.write_held()
        self.mode = Mode.AIOHTTP
        if self._timer is not None:  # aiohttp keeps its own time from here
            self._timer.cancel()
            self._timer = None
        data = bytes(self._buf)
        self._buf.clear()
        handler = self._handler()
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        if data:
            handler.data_received(data)

    def relay_closed(self, relay: Relay) -> None:
        """aiohttp closed its transport: close the connection, unless this protocol is serving it again."""
        if relay is not self._relay or self.transport is None:
            return
        if self.mode is Mode.OWN:
            # aiohttp's keep-alive timer (or its shutdown) gave up on a handler that has been idle while this
            # protocol answered: drop the handler; the connection's own idle timer decides about the rest.
            handler, self._aiohttp, self._relay = self._aiohttp, None, None
            handler.connection_lost(None)
            return
        self.transport.close()

    def _check_idle(self) -> None:
        self._timer = None
        if self.transport is None or self.mode is Mode.AIOHTTP:
            return
        now = self._loop.time()
        idle_s = self._front.keepalive_s
        if self.mode is Mode.OWN and now - self._last >= idle_s:
            self.transport.close()
            return
        delay = self._last + idle_s - now if self.mode is Mode.OWN else idle_s
        self._timer = self._loop.call_later(max(0.05, delay), self._check_idle)

    def close(self) -> None:
        """Close now (shutdown)."""
        self.write_held()
        if self.transport is not None:
            self.transport.close()

    def movable(self) -> bool:
        """Whether this connection is idle here: nothing read but unanswered, nothing unwritten, not aiohttp's."""
        return (self.mode is Mode.OWN and not self._buf and not self._held and not self._writing_paused
                and not self._reading_paused and self.transport is not None
                and self.transport.get_write_buffer_size() == 0)

    def move(self, handoff: Handoff) -> bool:
        """Hand this (movable) connection to a worker; True when it went (this side is then closed)."""
        assert self.transport is not None
        sock = self.transport.get_extra_info("socket")
        if sock is None:
            return False
        try:
            fd = os.dup(sock.fileno())
        except OSError:
            return False
        try:
            sent = handoff.send(fd)
        finally:
            os.close(fd)
        if sent:
            # Closes this process's descriptor only: the worker's keeps the connection open (no FIN).
            self.transport.abort()
        return sent


class Relay(asyncio.Transport):
    """The transport aiohttp's handler writes to: the connection's, for as long as the handler is its own."""

    def __init__(self, conn: ContentConnection) -> None:
        super().__init__()
        self._conn = conn

    def _real(self) -> asyncio.Transport | None:
        conn = self._conn
        return conn.transport if conn._relay is self else None  # noqa: SLF001 - the relay is part of it

    def write(self, data: Any) -> None:
        real = self._real()
        if real is not None:
            real.write(data)

    def writelines(self, list_of_data: Any) -> None:
        real = self._real()
        if real is not None:
            real.writelines(list_of_data)

    def is_closing(self) -> bool:
        real = self._real()
        return real is None or real.is_closing()

    def close(self) -> None:
        self._conn.relay_closed(self)

    def abort(self) -> None:
        real = self._real()
        if real is not None:
            real.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        real = self._real()
        return real.get_extra_info(name, default) if real is not None else default

    def pause_reading(self) -> None:
        real = self._real()
        if real is not None and self._conn.mode is Mode.AIOHTTP:
            real.pause_reading()

    def resume_reading(self) -> None:
        real = self._real()
        if real is not None and self._conn.mode is Mode.AIOHTTP:
            real.resume_reading()

    def is_reading(self) -> bool:
        real = self._real()
        return real is not None and real.is_reading()

    def get_write_buffer_size(self) -> int:
        real = self._real()
        return real.get_write_buffer_size() if real is not None else 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        real = self._real()
        return real.get_write_buffer_limits() if real is not None else (0, 0)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        real = self._real()
        if real is not None:
            real.set_write_buffer_limits(high, low)

    def can_write_eof(self) -> bool:
        real = self._real()
        return real is not None and real.can_write_eof()

    def write_eof(self) -> None:
        real = self._real()
        if real is not None:
            real.write_eof()

    def get_protocol(self) -> Any:
        return self._conn._aiohttp  # noqa: SLF001


Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def _handing_back(handler: Handler) -> Handler:
    """aiohttp's request handler, finishing a handed request's response itself so the connection can go back."""

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        relay = request.transport
        conn = relay._conn if isinstance(relay, Relay) else None  # noqa: SLF001
        if conn is None or conn.mode is not Mode.HANDED:
            return await handler(request)
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # redirects arrive raised; aiohttp sends them as responses
            await _finish(request, exc, conn)
            raise
        await _finish(request, response, conn)
        return response

    return handle


async def _finish(request: web.BaseRequest, response: web.StreamResponse, conn: ContentConnection) -> None:
    """Send the whole response now (aiohttp then finds it sent), and give the connection back if it stays open."""
    await response.prepare(request)
    await response.write_eof()
    if response.keep_alive:
        conn.handed_back()


class ConnectionFront:
    """The content origin's front (see appliance.web.sites.Front): one per content-origin application."""

    def __init__(self, site: web.Application) -> None:
        self.lane = HotLane(site)
        self.connections: set[ContentConnection] = set()
        self.keepalive_s = KEEPALIVE_S
        self._holding: list[ContentConnection] = []  # connections with answers held for this turn
        # Whether access lines are written: the config's switch, as the full path reads it (read once: the
        # configuration does not change while the process runs, and Config.__getattr__ costs on every request).
        self.access_log = bool(site[CONFIG].logging.access_log)
        self.answered = 0  # requests answered by the connections themselves (aiohttp answered the rest)
        self.busy_fraction = float(site[CONFIG].content.pack_busy_fraction)
        self._handoff: Handoff | None = None  # set in a packing primary
        self._demand = _LoopDemand()
        self._busy = False  # in a busy spell (loop's CPU share above busy_fraction, not yet below half of it)
        self._busy_windows = 0  # windows in a row above busy_fraction
        self._to_move = 0  # connections open when the spell began still to move
        self._new = 0  # connections accepted during the spell (every other one moves)

    def pack(self, handoff: Handoff) -> None:
        """This process accepts every connection and moves idle ones to the workers when busy."""
        self._handoff = handoff
        self._demand.start()

    def hold(self, conn: ContentConnection, loop: asyncio.AbstractEventLoop) -> None:
        """conn has answers to write at the end of this turn of loop (the running one, passed in: asking
        asyncio for it costs a getpid() system call)."""
        if not self._holding:
            loop.call_soon(self.write_held)
        self._holding.append(conn)

    def write_held(self) -> None:
        """Write every answer held this turn (a callback scheduled after the turn's I/O callbacks)."""
        holding, self._holding = self._holding, []
        for conn in holding:
            conn.write_held()
        if self._handoff is not None:
            self._spread(holding)

    @property
    def spreading(self) -> bool:
        """Whether connections accepted now are spread over this process and the workers."""
        return self._busy and self._handoff is not None

    def accepted_while_busy(self) -> None:
        """A connection was accepted during a busy spell: the workers get their share of these too (every
        other one with one worker), moved when idle like the others."""
        assert self._handoff is not None
        self._new += 1
        if self._new % (len(self._handoff) + 1) != 0:
            self._to_move += 1

    def _spread(self, served: list[ContentConnection]) -> None:
        """Move some of the connections just answered to the workers, while this loop is too busy."""
        demand = self._demand.sample(PACK_WINDOW_S)
        if demand is not None:
            if demand >= self.busy_fraction:
                self._busy_windows += 1
                if not self._busy and self._busy_windows >= PACK_BUSY_WINDOWS and self._handoff:
                    self._busy, self._new = True, 0
                    workers = len(self._handoff)
                    self._to_move = len(self.connections) * workers // (workers + 1)
                    log.info("content origin: the primary's loop is busy (%.0f%% of a core); moving up to %d "
                             "of its %d connections to the HTTP workers", demand * 100, self._to_move,
                             len(self.connections))
            else:
                self._busy_windows = 0
                if demand < self.busy_fraction / 2:
                    self._busy, self._to_move = False, 0
        if self._to_move <= 0 or self._handoff is None:
            return
        for conn in served:
            if conn.movable() and conn.move(self._handoff):
                metrics.CONNECTIONS_MOVED.inc()
                self._to_move -= 1
                if self._to_move <= 0:
                    return

    def factory(self, server: web.Server) -> Callable[[], asyncio.BaseProtocol]:
        """Protocols for the listening socket; aiohttp's handlers learn to give handed connections back."""
        server.request_handler = _handing_back(server.request_handler)
        return lambda: ContentConnection(self, server)

    def close_idle(self) -> None:
        """Close every connection still open (aiohttp has finished and closed its own by now)."""
        for conn in list(self.connections):
            conn.close()


class _LoopDemand:
    """How much of a core the calling thread (the event loop's) used lately: its CPU time over wall time.

    CPU time, not time spent waiting for a core as well: on a box whose cores are busy with other work
    (sign-ins hashing passwords, searches, a load generator) waiting grows without this loop having more
    to do, and would spread connections for nothing."""

    def __init__(self) -> None:
        self._wall = 0.0
        self._used = 0.0

    def start(self) -> None:
        """Begin measuring the calling thread (call it on the event loop's thread)."""
        self._wall, self._used = time.perf_counter(), time.thread_time()

    def sample(self, window_s: float) -> float | None:
        """The share of a core used since the last sample, once window_s has passed (None before)."""
        now = time.perf_counter()
        if now - self._wall < window_s:
            return None
        used = time.thread_time()
        demand = (used - self._used) / (now - self._wall)
        self._wall, self._used = now, used
        return demand
