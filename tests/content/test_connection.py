"""The content origin's own connections: hot reads answered without aiohttp, the same bytes, aiohttp for the rest.

Every other content test reaches the content origin through these connections too (the test server is
fronted like the daemon's listeners); these tests pin what the front itself promises.
"""

import asyncio
import gzip
import os
from typing import Any

import pytest

from appliance.content.connection import MAX_WAITING, ConnectionFront, ContentConnection, Mode, read_head
from appliance.content.hotlane import entry_path
from appliance.content.keys import CONTENT_SITE
from appliance.content.metrics import CONNECTIONS_MOVED
from appliance.content.origin import PASS_COOKIE
from appliance.web.handoff import Adopter, Handoff, channel
from tests.content.conftest import Library

VARYING = {"date", "x-request-id", "server"}  # differ from one response to the next anyway


def _front(library: Library) -> ConnectionFront:
    front = library.client.app[CONTENT_SITE].front
    assert isinstance(front, ConnectionFront)
    return front


def _pass_only(headers: dict[str, str]) -> dict[str, str]:
    return {"Cookie": f"{PASS_COOKIE}={headers['Cookie'].split(f'{PASS_COOKIE}=')[1]}"}


async def _get(library: Library, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    resp = await library.content.get(path, headers=headers, auto_decompress=False)
    return resp.status, {k.lower(): v for k, v in resp.headers.items() if k.lower() not in VARYING}, await resp.read()


@pytest.mark.parametrize("path", ["a/algebra", "img/logo.png", "home"])
@pytest.mark.parametrize("extra", [{"Accept-Encoding": "identity"}, {"Accept-Encoding": "gzip, deflate"}],
                         ids=["identity", "gzip"])
async def test_connection_answers_hot_reads_exactly_as_the_full_path(library: Library, path: str,
                                                                      extra: dict[str, str],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Status, every header and the body are those aiohttp's route sends, for 200 and 304 alike."""
    await library.show("testbook")
    h = {**_pass_only(await library.user()), **extra}
    front = _front(library)
    url = f"/content/testbook/{path}"
    first = await _get(library, url, h)  # a miss: the full path reads it and keeps it hot (and gzips it)
    assert first[0] == 200
    before = front.answered
    fast = await _get(library, url, h)
    assert front.answered == before + 1, "a hot read was not answered by the connection"
    tag = fast[1]["etag"]
    fast_304 = await _get(library, url, {**h, "If-None-Match": tag})
    assert front.answered == before + 2
    with monkeypatch.context() as m:  # the same requests, with the connection declining every one
        m.setattr(front.lane, "answer", lambda *a: None)
        full = await _get(library, url, h)
        full_304 = await _get(library, url, {**h, "If-None-Match": tag})
    assert front.answered == before + 2
    assert fast == full
    assert fast_304 == full_304 and fast_304[0] == 304 and fast_304[2] == b""
    if "content-encoding" in fast[1]:
        assert gzip.decompress(fast[2]) == gzip.decompress(full[2])


async def test_declines_what_needs_the_full_path(library: Library) -> None:
    """Errors, ranges, HEAD and readers without a pass are answered by aiohttp, with its answers."""
    await library.show("testbook")
    h = _pass_only(await library.user())
    front = _front(library)
    assert (await library.content.get("/content/testbook/a/algebra", headers=h)).status == 200
    before = front.answered
    checks: list[tuple[str, dict[str, str], int]] = [
        ("/content/testbook/a/algebra", {}, 403),  # no pass
        ("/content/testbook/a/algebra", {"Cookie": f"{PASS_COOKIE}=forged.token"}, 403),
        ("/content/testbook/a/algebra", {**h, "Range": "bytes=0-9"}, 206),
        ("/content/testbook/no/such/entry", h, 404),
        ("/content/nosuchbook/a/algebra", h, 404),
        ("/content/testbook/a/algebra?x=1", h, 200),  # a query: aiohttp's to read
    ]
    for url, headers, status in checks:
        resp = await library.content.get(url, headers=headers)
        assert resp.status == status, (url, headers, await resp.text())
    head = await library.content.head("/content/testbook/a/algebra", headers=h)
    assert head.status == 200 and await head.read() == b""
    assert front.answered == before


async def _raw(library: Library) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", library.content.port)


async def _response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await asyncio.wait_for(reader.readexactly(length), 10) if length else b""
    return status, headers, body


def _request(path: str, cookie: str, *extra: str, method: str = "GET") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test", f"Cookie: {cookie}", *extra, "", ""]
    return "\r\n".join(lines).encode()


async def test_pipelined_requests_keep_their_order_across_both_paths(library: Library) -> None:
    """Hot, cold, missing and hot again in one packet: answered in order; the connection serves again after."""
    await library.show("testbook")
    cookie = _pass_only(await library.user())["Cookie"]
    front = _front(library)
    algebra = await library.content.get("/content/testbook/a/algebra", headers={"Cookie": cookie})
    expected = await algebra.read()
    reader, writer = await _raw(library)
    before = front.answered
    paths = ("a/algebra", "a/photosynthesis", "missing", "a/algebra")
    writer.write(b"".join(_request(f"/content/testbook/{p}", cookie) for p in paths))
    got = [await _response(reader) for _ in range(4)]
    assert [g[0] for g in got] == [200, 200, 404, 200]
    assert got[0][2] == expected and got[3][2] == expected and b"hotosynthesis" in got[1][2].lower()
    assert front.answered == before + 2
    # After aiohttp answered on this connection, the connection answers hot reads itself again.
    writer.write(_request("/content/testbook/a/photosynthesis", cookie))
    assert (await _response(reader))[0] == 200
    assert front.answered == before + 3
    conns = [c for c in front.connections if c.mode is Mode.OWN]
    assert conns, "the connection did not come back from aiohttp"
    writer.close()


@pytest.mark.parametrize(("raw", "status"), [
    # aiohttp judges what the connection does not parse itself, and answers as it always did.
    (b"GET /content/testbook/a/algebra HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    (b"GET /content/testbook/a/algebra HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n", 400),
    (b"GET /content/testbook/a/algebra HTTP/1.1\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", 400),
    (b"POST /content/testbook/a/algebra HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", 405),
    (b"GET /content/testbook/a/algebra HTTP/1.1\r\nAccept: */*\r\n\r\n", 400),  # no Host
])
async def test_odd_requests_go_to_aiohttp(library: Library, raw: bytes, status: int) -> None:
    await library.show("testbook")
    reader, writer = await _raw(library)
    writer.write(raw)
    got = await _response(reader)
    assert got[0] == status or (status == 400 and got[0] in (400, 431)), got
    writer.close()


async def test_close_and_http10_end_the_connection(library: Library) -> None:
    """Connection: close and HTTP/1.0 are aiohttp's: one answer, then the connection closes."""
    await library.show("testbook")
    cookie = _pass_only(await library.user())["Cookie"]
    await library.content.get("/content/testbook/a/algebra", headers={"Cookie": cookie})
    for raw in (_request("/content/testbook/a/algebra", cookie, "Connection: close"),
                f"GET /content/testbook/a/algebra HTTP/1.0\r\nCookie: {cookie}\r\n\r\n".encode()):
        reader, writer = await _raw(library)
        writer.write(raw)
        status, _headers, body = await _response(reader)
        assert status == 200 and body
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server
        writer.close()


async def test_idle_and_slow_connections_are_closed(library: Library) -> None:
    """A connection that sends nothing, or a head byte by byte, is closed after the keep-alive time."""
    await library.show("testbook")
    front = _front(library)
    front.keepalive_s = 0.5
    idle_r, idle_w = await _raw(library)
    slow_r, slow_w = await _raw(library)
    try:
        for byte in b"GET /content/testbook/a/algebra HTTP/1.1\r\nHost: x\r\n":
            slow_w.write(bytes([byte]))
            await slow_w.drain()
            await asyncio.sleep(0.05)
        raise AssertionError("a head sent byte by byte for 2 s was still being read")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server closed it
    assert await asyncio.wait_for(idle_r.read(), 5) == b""
    try:
        rest = await asyncio.wait_for(slow_r.read(), 5)
    except (BrokenPipeError, ConnectionResetError):
        rest = b""
    assert rest == b""
    idle_w.close()
    slow_w.close()


async def test_a_client_that_does_not_read_is_not_answered_into_memory(library: Library) -> None:
    """Thousands of pipelined reads from a client that does not read: the server stops reading it, then
    answers every one in order once the client reads."""
    await library.show("testbook")
    cookie = _pass_only(await library.user())["Cookie"]
    front = _front(library)
    body = await (await library.content.get("/content/testbook/img/logo.png", headers={"Cookie": cookie})).read()
    count = 20000
    reader, writer = await _raw(library)
    writer.transport.set_write_buffer_limits(high=64 << 20)
    writer.write(_request("/content/testbook/img/logo.png", cookie) * count)
    await asyncio.sleep(1.0)
    conn: Any = next(c for c in front.connections if isinstance(c, ContentConnection) and c._buf)  # noqa: SLF001
    assert conn._writing_paused and conn._reading_paused  # noqa: SLF001
    assert len(conn._buf) <= MAX_WAITING + (256 << 10)  # noqa: SLF001 - one read of asyncio at most beyond
    assert conn.transport.get_write_buffer_size() < 4 << 20
    for _ in range(count):
        status, _h, got = await _response(reader)
        assert status == 200 and got == body
    writer.close()


def test_read_head_takes_only_plain_http11() -> None:
    good = read_head(b"GET /content/b/p HTTP/1.1\r\nHost: x\r\nCookie: a=b\r\nAccept-Encoding: gzip")
    assert good is not None and good.keep_alive and not good.has_body and good.fields[b"cookie"] == "a=b"
    for raw in (b"GET /content/b/p HTTP/1.0", b"GET /content/b/p  HTTP/1.1", b"GET /content/b/p HTTP/1.1\r\n x: y",
                b"GET /content/b/p HTTP/1.1\r\nCookie: a\r\nCookie: b",
                b"GET /content/b/p HTTP/1.1\r\nContent-Length: -1", b"GET /content/b/\xc3\xa9 HTTP/1.1",
                b"GET /content/b/p HTTP/1.1\r\nCookie: \xc3\xa9", b"G(T /content/b/p HTTP/1.1"):
        assert read_head(raw) is None, raw
    closing = read_head(b"GET / HTTP/1.1\r\nConnection: keep-alive, close")
    assert closing is not None and not closing.keep_alive
    body = read_head(b"GET / HTTP/1.1\r\nContent-Length: 5")
    assert body is not None and body.has_body


def test_entry_path_decodes_as_aiohttp_or_declines() -> None:
    assert entry_path("/content/book/a/algebra") == ("book", "a/algebra")
    assert entry_path("/content/book/A/Z%C3%BCrich%20See") == ("book", "A/Zürich See")
    assert entry_path("/content/b%C3%BCch/x") == ("büch", "x")
    for target in ("/content/book/a%2Fb", "/content/book/a%25b", "/content/book/a/../b", "/content/book/./a",
                   "/content/book//a", "/content/book/a?x", "/content/book/", "/content/book", "/other/book/a",
                   "/content/book/%FF", "/content/book/a%00"):
        assert entry_path(target) is None, target


class _RecordingTransport(asyncio.Transport):
    """A transport that keeps what is written, one entry per call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[bytes]] = []

    def write(self, data: Any) -> None:
        self.calls.append([bytes(data)])

    def writelines(self, list_of_data: Any) -> None:
        self.calls.append([bytes(d) for d in list_of_data])

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


async def test_answers_of_one_turn_are_written_together_at_its_end(library: Library) -> None:
    """Requests that arrive together are answered in order with one write after the turn, not a write each
    (each write wakes the client, which then takes the core from the requests still to answer)."""
    await library.show("testbook")
    cookie = _pass_only(await library.user())["Cookie"]
    front = _front(library)
    page = await (await library.content.get("/content/testbook/a/algebra", headers={"Cookie": cookie})).read()
    logo = await (await library.content.get("/content/testbook/img/logo.png", headers={"Cookie": cookie})).read()
    conn = ContentConnection(front, None)  # type: ignore[arg-type] - hot reads never reach aiohttp
    transport = _RecordingTransport()
    conn.connection_made(transport)
    paths = ("a/algebra", "img/logo.png", "a/algebra")
    conn.data_received(b"".join(_request(f"/content/testbook/{p}", cookie) for p in paths))
    assert transport.calls == []  # held until the loop's turn ends
    await asyncio.sleep(0)
    assert len(transport.calls) == 1 and len(transport.calls[0]) == 3
    heads = [chunk.split(b"\r\n", 1)[0] for chunk in transport.calls[0]]
    assert heads == [b"HTTP/1.1 200 OK"] * 3
    bodies = [chunk.split(b"\r\n\r\n", 1)[1] for chunk in transport.calls[0]]
    assert bodies == [page, logo, page]
    conn.connection_lost(None)


class _Moved(asyncio.Protocol):
    """Stands in for a worker's protocol: answers every request on an adopted connection with a marker."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            _, self.buf = self.buf.split(b"\r\n\r\n", 1)
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nmoved")  # type: ignore[attr-defined]


async def _packing(library: Library, demand: float) -> tuple[ConnectionFront, list[Any], Handoff]:
    """The test front packing, with a measured demand fixed at `demand`, and a worker adopting into _Moved."""
    front = _front(library)
    handoff = Handoff()
    mine, theirs = channel()
    handoff.attach(1, mine)
    loop = asyncio.get_running_loop()
    adopted: list[Any] = []

    def adopt(sock: Any) -> None:
        adopted.append(loop.create_task(loop.connect_accepted_socket(_Moved, sock)))

    adopter = Adopter(os.dup(theirs.fileno()), adopt)
    theirs.close()
    adopter.start(loop)
    front.pack(handoff)
    front._demand.sample = lambda window_s: demand  # type: ignore[method-assign]  # noqa: SLF001
    return front, adopted, handoff


async def test_a_busy_primary_moves_idle_connections_to_a_worker(library: Library) -> None:
    """While the loop is too busy, connections idle after an answer go to a worker, socket and all: the
    client's next request is answered there on the same connection, and unread bytes move with it."""
    await library.show("testbook")
    cookie = _pass_only(await library.user())["Cookie"]
    page = await (await library.content.get("/content/testbook/a/algebra", headers={"Cookie": cookie})).read()
    front, adopted, handoff = await _packing(library, demand=1.0)
    moved_before = CONNECTIONS_MOVED._value.get()  # noqa: SLF001
    clients = [await _raw(library) for _ in range(4)]
    for reader, writer in clients:
        writer.write(_request("/content/testbook/a/algebra", cookie))
        status, _headers, body = await _response(reader)
        assert (status, body) == (200, page)
    await asyncio.sleep(0.05)
    assert handoff.moved >= 2 and adopted, "no connection was moved while busy"
    assert CONNECTIONS_MOVED._value.get() - moved_before == handoff.moved  # noqa: SLF001
    answers = []
    for reader, writer in clients:
        writer.write(_request("/content/testbook/a/algebra", cookie) * 2)  # two at once: both must be answered
        answers.append([(await _response(reader))[2] for _ in range(2)])
    assert answers.count([b"moved", b"moved"]) == handoff.moved
    assert answers.count([page, page]) == len(clients) - handoff.moved
    for _reader, writer in clients:
        writer.close()


async def test_a_primary_with_headroom_keeps_its_connections(library: Library) -> None:
    """Below the busy fraction nothing moves: a class's reads stay in the one process they cost least in."""
    await library.show("testbook")
    cookie = _pass_only(await library.user())["Cookie"]
    page = await (await library.content.get("/content/testbook/a/algebra", headers={"Cookie": cookie})).read()
    _front_, adopted, handoff = await _packing(library, demand=0.1)
    reader, writer = await _raw(library)
    for _ in range(20):
        writer.write(_request("/content/testbook/a/algebra", cookie))
        assert (await _response(reader))[2] == page
    assert handoff.moved == 0 and not adopted
    writer.close()
