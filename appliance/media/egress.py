"""The egress proxy every yt-dlp run goes through: each request it makes is checked against the SSRF policy.

Checking the URL an admin adds is not enough: yt-dlp then follows redirects and fetches thumbnails, manifests
and fragments on its own, and any of them may point into the facility's networks. So yt-dlp (and the ffmpeg
it may start) get this small forward proxy on 127.0.0.1 through `http_proxy`/`https_proxy` in their
environment (not `--proxy`: a command line is readable by every local user, and the URL carries the
token). The proxy resolves every target itself, refuses internal addresses (unless listed in
`egress.allowed_networks`, the one egress policy) and odd ports, and connects to the vetted address, never
to the name again, so a second DNS answer cannot swap the target (DNS rebinding).

It speaks just enough HTTP/1.1 for yt-dlp and ffmpeg: `CONNECT host:port` tunnels (TLS passes through
untouched) and absolute-form `GET http://...` requests, one request per connection (`Connection: close`
both ways). Only a client that knows this process's random token gets through, so other local users
cannot borrow it as an open proxy.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import ipaddress
import logging
import os
import re
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from appliance.media import metrics
from appliance.media.ssrf import (
    IPAddress,
    IPNetwork,
    UnresolvableHost,
    UrlRefused,
    check_addresses,
    check_port,
    resolve_host,
)

log = logging.getLogger(__name__)

USER = "appliance"
# yt-dlp reads the reason phrase of a refusal out of the status line; ytdlp.classify looks for this marker
REFUSAL_MARKER = "Refused by appliance egress: "
MAX_HEAD_BYTES = 32 * 1024  # request line plus headers (signed CDN URLs run to a few KiB)
MAX_REQUEST_LINE = 8 * 1024
MAX_HEADERS = 100
MAX_BODY_BYTES = 16 * 1024 * 1024  # yt-dlp only POSTs small API queries
HEAD_TIMEOUT_S = 10.0  # a client that is this slow to send its request is not yt-dlp
CHUNK = 64 * 1024
_TOKEN_CHARS = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HOST = re.compile(r"^(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_.])?|\[[0-9A-Fa-f:.]+\])$")
# never forwarded: they describe this hop, not the request (RFC 9110 7.6.1), or they are our credentials;
# Host is rebuilt from the absolute target, which takes precedence over it (RFC 9112 3.2.2)
_NOT_FORWARDED = {b"connection", b"keep-alive", b"proxy-authorization", b"proxy-authenticate", b"proxy-connection",
               b"te", b"trailer", b"transfer-encoding", b"upgrade", b"host"}


class Refusal(StrEnum):
    """Why the proxy turned a request away (the label of appliance_media_egress_refused_total)."""

    ADDRESS = "address"  # internal address outside egress.allowed_networks
    PORT = "port"  # not 80/443 on a public address
    AUTH = "auth"  # missing or wrong token
    BAD_REQUEST = "bad_request"  # malformed, oversized or unsupported request
    BUSY = "busy"  # too many connections at once


class _Reply(Exception):
    """Answer the client with this status and plain-text reason instead of forwarding."""

    def __init__(self, status: int, reason: str, refusal: Refusal | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.refusal = refusal


@dataclass(frozen=True)
class _Request:
    method: str
    host: str
    port: int
    path: str  # origin-form target; empty for CONNECT
    headers: list[tuple[bytes, bytes]]


class _Activity:
    """When bytes last moved in either direction of a connection: a tunnel is idle only if both are."""

    def __init__(self) -> None:
        self.last = asyncio.get_running_loop().time()

    def touch(self) -> None:
        self.last = asyncio.get_running_loop().time()


class EgressProxy:
    """A forward proxy on 127.0.0.1 that lets yt-dlp reach only the addresses the SSRF policy allows."""

    def __init__(self, allowed: Sequence[IPNetwork], *, connect_timeout_s: float = 10.0,
                 idle_timeout_s: float = 120.0, max_connections: int = 32) -> None:
        self.allowed = list(allowed)
        self.connect_timeout_s = connect_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.max_connections = max_connections
        self.token = secrets.token_urlsafe(24)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()  # both ends of every open connection

    @property
    def url(self) -> str:
        """The proxy URL to give yt-dlp, credentials included (never log it)."""
        if not self.port:
            raise RuntimeError("egress proxy is not started")
        return f"http://{USER}:{self.token}@127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        """Client connections being served right now."""
        return len(self._handlers)

    async def start(self) -> None:
        """Listen on an ephemeral loopback port: nothing off this machine can reach the proxy."""
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0, limit=MAX_HEAD_BYTES)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening and end every open connection (yt-dlp runs are killed before this)."""
        if self._server is not None:
            self._server.close()
        # closing the sockets ends the handlers' reads and writes; only one stuck in a connect is cancelled
        for writer in list(self._writers):
            writer.close()
        if self._handlers:
            _done, stuck = await asyncio.wait(list(self._handlers), timeout=1.0)
            for task in stuck:
                task.cancel()
            if stuck:
                await asyncio.wait(stuck)
        if self._server is not None:
            await self._server.wait_closed()

    # ------------------------------------------------------------------------------------------ a connection

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            if len(self._handlers) > self.max_connections:
                await self._refuse(reader, writer, _Reply(503, "too many connections through the egress proxy",
                                                          Refusal.BUSY))
                return
            await self._serve(reader, writer)
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client went away or stalled: nothing to tell it
        except asyncio.CancelledError:
            # only close() cancels a handler, and Python 3.11's start_server logs a cancelled handler task
            # as an error: end quietly instead
            pass
        except Exception:  # noqa: BLE001 - one bad connection is logged and dropped, the proxy carries on
            log.exception("egress proxy: unexpected error on a connection")
        finally:
            self._handlers.discard(task)
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(HEAD_TIMEOUT_S):
                head = await _read_head(reader)
            if head is None:
                return
            request = self._parse(head)
            addresses = await self._vet(request)
            upstream = await self._connect(request, addresses)
        except _Reply as reply:
            await self._refuse(reader, writer, reply)
            return
        up_reader, up_writer = upstream
        self._writers.add(up_writer)
        try:
            if request.method == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
                await self._tunnel(reader, writer, up_reader, up_writer)
            else:
                await self._forward(request, reader, writer, up_reader, up_writer)
        except _Reply as reply:
            await self._refuse(reader, writer, reply)
        finally:
            self._writers.discard(up_writer)
            up_writer.close()
            with contextlib.suppress(OSError):
                await up_writer.wait_closed()

    def _parse(self, head: bytes) -> _Request:
        lines = head.split(b"\r\n")
        line = lines[0]
        if len(line) > MAX_REQUEST_LINE or len(lines) > MAX_HEADERS + 1:
            raise _Reply(400, "request line or header block too long", Refusal.BAD_REQUEST)
        if any(b"\r" in ln or b"\n" in ln or b"\x00" in ln for ln in lines):
            raise _Reply(400, "bare CR, LF or NUL in the request head", Refusal.BAD_REQUEST)
        parts = line.split(b" ")
        if len(parts) != 3 or parts[2] not in (b"HTTP/1.1", b"HTTP/1.0") or not _TOKEN_CHARS.match(parts[0]):
            raise _Reply(400, "malformed request line", Refusal.BAD_REQUEST)
        headers: list[tuple[bytes, bytes]] = []
        for raw in lines[1:]:
            name, sep, value = raw.partition(b":")
            if not sep or not _TOKEN_CHARS.match(name):
                raise _Reply(400, "malformed header line", Refusal.BAD_REQUEST)
            headers.append((name, value.strip()))
        # the token is checked before anything else is looked at: a stranger learns nothing about the policy
        if not self._authorized(headers):
            raise _Reply(407, "proxy authentication required", Refusal.AUTH)
        method = parts[0].decode("ascii")
        target = parts[1].decode("ascii", "replace")
        if method == "CONNECT":
            host, port = _authority(target)
            return _Request(method, host, port, "", headers)
        try:
            url = urlsplit(target)
        except ValueError as exc:  # e.g. an unclosed IPv6 bracket
            raise _Reply(400, "malformed target URL", Refusal.BAD_REQUEST) from exc
        if url.scheme != "http" or "@" in url.netloc:
            raise _Reply(400, "only absolute http:// targets and CONNECT are proxied", Refusal.BAD_REQUEST)
        has_port = url.netloc.rpartition(":")[2].isdigit() and not url.netloc.endswith("]")
        host, port = _authority(url.netloc if has_port else f"{url.netloc}:80")
        path = url.path or "/"
        if url.query:
            path += f"?{url.query}"
        return _Request(method, host, port, path, headers)

    def _authorized(self, headers: list[tuple[bytes, bytes]]) -> bool:
        expected = f"{USER}:{self.token}".encode()
        for name, value in headers:
            if name.lower() != b"proxy-authorization":
                continue
            scheme, _, cred = value.partition(b" ")
            if scheme.lower() != b"basic":
                continue
            try:
                given = base64.b64decode(cred.strip(), validate=True)
            except (binascii.Error, ValueError):
                continue
            if secrets.compare_digest(given, expected):
                return True
        return False

    async def _vet(self, request: _Request) -> list[IPAddress]:
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                addresses = await resolve_host(request.host)
        except UnresolvableHost as exc:
            # worded like the resolver so yt-dlp's message reads as "offline" and the job waits
            raise _Reply(502, f"Name or service not known ({exc})") from exc
        except TimeoutError as exc:
            raise _Reply(504, "name resolution timed out") from exc
        try:
            check_addresses(addresses, self.allowed)
        except UrlRefused as exc:
            raise _Reply(403, f"{REFUSAL_MARKER}{exc}", Refusal.ADDRESS) from exc
        try:
            check_port(request.port, addresses, self.allowed)
        except UrlRefused as exc:
            raise _Reply(403, f"{REFUSAL_MARKER}{exc}", Refusal.PORT) from exc
        return addresses

    async def _connect(self, request: _Request,
                       addresses: list[IPAddress]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect to the first vetted address that answers (by address: the name is never resolved again)."""
        last: OSError | None = None
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                for addr in addresses:
                    try:
                        return await asyncio.open_connection(str(addr), request.port, limit=MAX_HEAD_BYTES,
                                                             family=_family(addr))
                    except OSError as exc:
                        last = exc
        except TimeoutError as exc:
            raise _Reply(504, f"connection to {request.host}:{request.port} timed out") from exc
        # os.strerror gives "Connection refused", "Network is unreachable": what ytdlp.classify reads as offline
        why = os.strerror(last.errno) if last is not None and last.errno else "connection failed"
        raise _Reply(502, f"{why} ({request.host}:{request.port})")

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter) -> None:
        activity = _Activity()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._pipe(reader, up_writer, activity), name="egress-tunnel-up")
            tg.create_task(self._pipe(up_reader, writer, activity), name="egress-tunnel-down")

    async def _forward(self, request: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter) -> None:
        length = 0
        out = [f"{request.method} {request.path} HTTP/1.1".encode(), b"Host: " + _host_header(request)]
        for name, value in request.headers:
            low = name.lower()
            if low == b"content-length":
                if not value.isdigit() or int(value) > MAX_BODY_BYTES:
                    raise _Reply(400, "bad or too large Content-Length", Refusal.BAD_REQUEST)
                length = int(value)
            elif low == b"transfer-encoding":
                raise _Reply(411, "chunked request bodies are not proxied", Refusal.BAD_REQUEST)
            if low not in _NOT_FORWARDED:
                out.append(name + b": " + value)
        out += [b"Connection: close", b"", b""]
        up_writer.write(b"\r\n".join(out))
        activity = _Activity()
        while length > 0:
            async with asyncio.timeout(self.idle_timeout_s):
                chunk = await reader.read(min(CHUNK, length))
            if not chunk:
                return
            length -= len(chunk)
            up_writer.write(chunk)
            await up_writer.drain()
        await up_writer.drain()
        async with asyncio.timeout(self.idle_timeout_s):
            head = await _read_head(up_reader, status=502, refusal=None)
        if head is None:
            raise _Reply(502, "upstream closed without a response")
        lines = head.split(b"\r\n")
        kept = [lines[0], *(ln for ln in lines[1:] if ln.partition(b":")[0].strip().lower() not in
                            {b"connection", b"keep-alive", b"proxy-connection", b"proxy-authenticate"})]
        writer.write(b"\r\n".join([*kept, b"Connection: close", b"", b""]))
        await self._pipe(up_reader, writer, activity)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, activity: _Activity) -> None:
        """Copy src to dst until EOF; on idleness or an error close dst, which ends the opposite pipe too."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    async with asyncio.timeout(self.idle_timeout_s):
                        data = await src.read(CHUNK)
                except TimeoutError:
                    if loop.time() - activity.last < self.idle_timeout_s:
                        continue  # the other direction is busy (a download sends nothing upstream for minutes)
                    dst.close()
                    return
                if not data:
                    if dst.can_write_eof():
                        dst.write_eof()  # half-close: the peer may still answer the other way
                    return
                activity.touch()
                dst.write(data)
                async with asyncio.timeout(self.idle_timeout_s):
                    await dst.drain()
        except (OSError, TimeoutError):
            dst.close()

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, reply: _Reply) -> None:
        """Answer with the reply, then read what the client still sends before the socket is closed.

        Closing a socket with unread input resets the connection, and the client may lose the answer with it.
        """
        if reply.refusal is not None:
            metrics.EGRESS_REFUSED.labels(reply.refusal.value).inc()
        if reply.refusal in (Refusal.ADDRESS, Refusal.PORT):
            log.warning("download egress refused: %s", reply.reason.removeprefix(REFUSAL_MARKER))
        body = (reply.reason + "\n").encode("utf-8", "replace")
        head = [f"HTTP/1.1 {reply.status} {reply.reason}", "Content-Type: text/plain; charset=utf-8",
                f"Content-Length: {len(body)}", "Connection: close"]
        if reply.status == 407:
            head.append('Proxy-Authenticate: Basic realm="appliance-egress"')
        with contextlib.suppress(OSError, TimeoutError):
            writer.write("\r\n".join([*head, "", ""]).encode("utf-8", "replace") + body)
            if writer.can_write_eof():
                writer.write_eof()
            async with asyncio.timeout(1.0):
                await writer.drain()
                budget = 4 * MAX_HEAD_BYTES
                while budget > 0 and (data := await reader.read(CHUNK)):
                    budget -= len(data)


async def _read_head(reader: asyncio.StreamReader, *, status: int = 400,
                     refusal: Refusal | None = Refusal.BAD_REQUEST) -> bytes | None:
    """A request or response head without its final blank line; None if the peer closed before sending any.

    A head cut short or longer than the reader's limit is answered with `status`.
    """
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise _Reply(status, "incomplete message head", refusal) from exc
        return None
    except asyncio.LimitOverrunError as exc:
        raise _Reply(status, "request line or header block too long", refusal) from exc
    return raw[:-4]


def _authority(text: str) -> tuple[str, int]:
    """host and port of `host:port` or `[v6]:port`; _Reply(400) if either is malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not _HOST.match(host):
        raise _Reply(400, "target must be host:port", Refusal.BAD_REQUEST)
    if host.startswith("["):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise _Reply(400, "bad IPv6 literal", Refusal.BAD_REQUEST) from exc
    return host, int(port)


def _host_header(request: _Request) -> bytes:
    host = f"[{request.host}]" if ":" in request.host else request.host
    return (host if request.port == 80 else f"{host}:{request.port}").encode("ascii", "replace")


def _family(addr: IPAddress) -> int:
    return socket.AF_INET6 if addr.version == 6 else socket.AF_INET
