"""The egress proxy: every request of a yt-dlp run (redirects, media, manifests, ffmpeg) meets the SSRF policy.

Two real sites: the video site on 127.0.0.1 (allowed as 127.0.0.1/32) and an "internal" server on 127.0.0.2
that stands for the facility LAN or a metadata service. Refused means the internal server saw no request.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from appliance.media.egress import EgressProxy
from appliance.media.ssrf import parse_networks
from appliance.media.ytdlp import FailureKind, YtdlpError, YtdlpOptions, download, resolve
from tests.media.realservers import VideoSite, build_site, site_app

INTERNAL_HOST = "127.0.0.2"  # any 127/8 address answers on Linux loopback


@dataclass
class Internal:
    """The server the proxy must keep yt-dlp away from; it records every request it gets."""

    base: str
    port: int
    hits: list[str] = field(default_factory=list)


@dataclass
class Site:
    """The allowed video site, and the request heads it received."""

    site: VideoSite
    seen: list[dict[str, str]] = field(default_factory=list)

    def url(self, path: str) -> str:
        """Absolute URL of a path on the allowed site."""
        return self.site.url(path)


async def _serve(app: web.Application, host: str) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, host, 0).start()
    return runner, int(runner.addresses[0][1])


@pytest.fixture
async def internal(tmp_path: Path, sample_mp4: Path) -> AsyncIterator[Internal]:
    """A full video site on 127.0.0.2: if the proxy let a request through, the download would succeed."""
    root = tmp_path / "internal"
    build_site(root, sample_mp4)
    app = site_app(root, asyncio.Event())
    hits: list[str] = []

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        hits.append(request.path_qs)
        return await handler(request)  # type: ignore[no-any-return]

    app.middlewares.append(record)
    runner, port = await _serve(app, INTERNAL_HOST)
    try:
        yield Internal(f"http://{INTERNAL_HOST}:{port}", port, hits)
    finally:
        await runner.cleanup()


@pytest.fixture
async def site(tmp_path: Path, sample_mp4: Path, internal: Internal) -> AsyncIterator[Site]:
    """The video site on 127.0.0.1 plus pages that lead to the internal server."""
    root = tmp_path / "site"
    build_site(root, sample_mp4)
    (root / "leak.html").write_text(
        "<!doctype html><html><head><title>Leak</title></head>"
        f'<body><video src="{internal.base}/lecture.mp4"></video></body></html>'
    )
    # SAMPLE-AES is beyond yt-dlp's native HLS downloader: it hands this stream to ffmpeg
    (root / "stream.m3u8").write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:5\n#EXT-X-MEDIA-SEQUENCE:0\n"
        f'#EXT-X-KEY:METHOD=SAMPLE-AES,URI="{internal.base}/key.bin"\n'
        f"#EXTINF:5.0,\n{internal.base}/seg0.ts\n#EXT-X-ENDLIST\n"
    )
    app = site_app(root, asyncio.Event())
    seen: list[dict[str, str]] = []

    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"{internal.base}/{request.match_info['name']}")

    async def m3u8(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(root / "stream.m3u8", headers={"Content-Type": "application/vnd.apple.mpegurl"})

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        seen.append(dict(request.headers))
        return await handler(request)  # type: ignore[no-any-return]

    app.middlewares.append(record)
    app.router.add_get("/redirect/{name}", redirect)
    app.router.add_get("/hls/stream.m3u8", m3u8)
    runner, port = await _serve(app, "127.0.0.1")
    try:
        yield Site(VideoSite(base=f"http://127.0.0.1:{port}", root=root, port=port), seen)
    finally:
        await runner.cleanup()


async def _proxy(*cidrs: str) -> EgressProxy:
    proxy = EgressProxy(parse_networks(list(cidrs)), connect_timeout_s=2, idle_timeout_s=5)
    await proxy.start()
    return proxy


@pytest.fixture
async def proxy() -> AsyncIterator[EgressProxy]:
    """The proxy with only the video site's address allowed."""
    p = await _proxy("127.0.0.1/32")
    try:
        yield p
    finally:
        await p.close()


def _auth(proxy: EgressProxy) -> bytes:
    return b"Proxy-Authorization: Basic " + base64.b64encode(f"appliance:{proxy.token}".encode()) + b"\r\n"


async def _exchange(proxy: EgressProxy, data: bytes, *, then: bytes = b"") -> bytes:
    """Send raw bytes to the proxy (and `then` once it answered), return all it sent back until it closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        async with asyncio.timeout(5):
            writer.write(data)
            if then:
                answer = await reader.readuntil(b"\r\n\r\n")
                writer.write(then)
                return answer + await reader.read()
            return await reader.read()
    finally:
        writer.close()


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def _refused(reason: str) -> float:
    return REGISTRY.get_sample_value("appliance_media_egress_refused_total", {"reason": reason}) or 0.0


def _opts(proxy: EgressProxy) -> YtdlpOptions:
    return YtdlpOptions(timeout_s=30, socket_timeout_s=5, proxy=proxy.url)


# ------------------------------------------------------------------------------------------- forwarding


async def test_plain_http_is_forwarded_in_origin_form(proxy: EgressProxy, site: Site) -> None:
    answer = await _exchange(proxy, f"GET {site.url('lecture.html')}?x=1 HTTP/1.1\r\nHost: ignored\r\n".encode()
                             + _auth(proxy) + b"Proxy-Connection: keep-alive\r\nUser-Agent: t\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert _status(answer) == 200
    assert b"Connection: close" in head.split(b"\r\n")
    assert b"Lecture one" in body
    [got] = site.seen
    assert got["Host"] == f"127.0.0.1:{site.site.port}"  # from the absolute target, not the client's Host
    assert got["Connection"] == "close"
    assert got["User-Agent"] == "t"
    assert "Proxy-Authorization" not in got  # the token never leaves the machine
    assert "Proxy-Connection" not in got


async def test_connect_tunnels_to_an_allowed_address(proxy: EgressProxy, site: Site) -> None:
    request = b"GET /lecture.html HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    answer = await _exchange(proxy, f"CONNECT 127.0.0.1:{site.site.port} HTTP/1.1\r\n".encode() + _auth(proxy)
                             + b"\r\n", then=request)
    assert answer.startswith(b"HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 200 OK")
    assert b"Lecture one" in answer
    assert len(site.seen) == 1


async def test_yt_dlp_downloads_through_the_proxy(proxy: EgressProxy, site: Site, tmp_path: Path,
                                                  sample_bytes: bytes) -> None:
    got = await download(site.url("lecture.html"), tmp_path / "w", _opts(proxy))
    assert got.video.read_bytes() == sample_bytes
    assert all("Proxy-Authorization" not in h for h in site.seen)


# ------------------------------------------------------------------------------------------- refusals


async def test_redirect_to_a_disallowed_address_is_refused(proxy: EgressProxy, site: Site, internal: Internal,
                                                           tmp_path: Path) -> None:
    before = _refused("address")
    with pytest.raises(YtdlpError) as err:
        await download(site.url("redirect/lecture.html"), tmp_path / "w", _opts(proxy))
    assert err.value.kind is FailureKind.REFUSED
    assert str(err.value) == (f"refused: address {INTERNAL_HOST} is loopback, link-local or private; "
                              "add its range to egress.allowed_networks")
    assert internal.hits == []
    assert _refused("address") > before
    with pytest.raises(YtdlpError) as err:  # the metadata run (playlist check) is held to the same rule
        await resolve(site.url("redirect/lecture.html"), _opts(proxy))
    assert err.value.kind is FailureKind.REFUSED
    assert internal.hits == []


async def test_video_on_a_disallowed_address_is_refused(proxy: EgressProxy, site: Site, internal: Internal,
                                                        tmp_path: Path) -> None:
    with pytest.raises(YtdlpError) as err:
        await download(site.url("leak.html"), tmp_path / "w", _opts(proxy))
    assert err.value.kind is FailureKind.REFUSED
    assert INTERNAL_HOST in str(err.value)
    assert internal.hits == []


async def test_stream_handed_to_ffmpeg_goes_through_the_proxy(proxy: EgressProxy, site: Site, internal: Internal,
                                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              ) -> None:
    # ffmpeg honours no_proxy over the http_proxy yt-dlp gives it: one inherited from the daemon must not count
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    opts = dataclasses.replace(_opts(proxy), format="b")
    with pytest.raises(YtdlpError) as err:
        await download(site.url("hls/stream.m3u8"), tmp_path / "w", opts)
    assert err.value.kind is FailureKind.REFUSED, err.value
    assert internal.hits == []


async def test_yt_dlp_https_to_a_disallowed_address_is_refused(proxy: EgressProxy, internal: Internal,
                                                               tmp_path: Path) -> None:
    # https goes through a CONNECT tunnel: refused before any TLS byte, yt-dlp prints the proxy's reason
    with pytest.raises(YtdlpError) as err:
        await download(f"https://{INTERNAL_HOST}:{internal.port}/lecture.html", tmp_path / "w", _opts(proxy))
    assert err.value.kind is FailureKind.REFUSED
    assert internal.hits == []


async def test_https_to_a_disallowed_address_is_refused_without_connecting(proxy: EgressProxy,
                                                                           internal: Internal) -> None:
    answer = await _exchange(proxy, f"CONNECT {INTERNAL_HOST}:{internal.port} HTTP/1.1\r\n".encode()
                             + _auth(proxy) + b"\r\n")
    assert _status(answer) == 403
    assert b"add its range to egress.allowed_networks" in answer
    assert internal.hits == []


async def test_names_are_resolved_and_checked(internal: Internal) -> None:
    proxy = await _proxy()  # nothing allowed: localhost is as internal as its address
    try:
        answer = await _exchange(proxy, f"GET http://localhost:{internal.port}/lecture.html HTTP/1.1\r\n".encode()
                                 + _auth(proxy) + b"\r\n")
    finally:
        await proxy.close()
    assert _status(answer) == 403
    assert b"is loopback, link-local or private" in answer
    assert internal.hits == []


async def test_public_addresses_only_on_web_ports(proxy: EgressProxy) -> None:
    before = _refused("port")
    # refused before any connection is tried: this test never leaves the machine
    answer = await _exchange(proxy, b"CONNECT 93.184.216.34:25 HTTP/1.1\r\n" + _auth(proxy) + b"\r\n")
    assert _status(answer) == 403
    assert b"port 25 is not 80 or 443" in answer
    assert _refused("port") == before + 1


# ------------------------------------------------------------------------------------------- the proxy itself


@pytest.mark.parametrize("credentials", [None, "appliance:wrong", "someone:{token}", "garbage!"])
async def test_token_is_required(proxy: EgressProxy, site: Site, credentials: str | None) -> None:
    auth = b""
    if credentials is not None:
        text = credentials.format(token=proxy.token)
        value = text if text == "garbage!" else base64.b64encode(text.encode()).decode()
        auth = f"Proxy-Authorization: Basic {value}\r\n".encode()
    before = _refused("auth")
    answer = await _exchange(proxy, f"GET {site.url('lecture.html')} HTTP/1.1\r\n".encode() + auth + b"\r\n")
    assert _status(answer) == 407
    assert b'Proxy-Authenticate: Basic realm="appliance-egress"' in answer
    assert site.seen == []
    assert _refused("auth") == before + 1


@pytest.mark.parametrize(
    "line",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello sent to the plain proxy
        b"GET http://127.0.0.1/" + b"a" * 10_000 + b" HTTP/1.1",  # request line over 8 KiB
        b"GET http://127.0.0.1/" + b"a" * 40_000 + b" HTTP/1.1",  # head over the 32 KiB read limit
        b"GET http://127.0.0.1/",  # no version
        b"GET /origin-form HTTP/1.1",  # not a proxy request
        b"GET https://127.0.0.1/ HTTP/1.1",  # the proxy does not speak TLS upstream
        b"GET ftp://127.0.0.1/ HTTP/1.1",
        b"GET http://user:pw@127.0.0.1/ HTTP/1.1",
        b"GET http://127.0.0.1:abc/ HTTP/1.1",
        b"GET http://[::1/ HTTP/1.1",
        b"GET http:/// HTTP/1.1",
        b"CONNECT 127.0.0.1 HTTP/1.1",  # no port
        b"CONNECT 127.0.0.1:99999 HTTP/1.1",
        b"CONNECT evil\x00host:443 HTTP/1.1",
        b"CONNECT [::1 HTTP/1.1",
        b"GET http://127.0.0.1/ HTTP/2.0",
        b"GET http://127.0.0.1/ HTTP/1.1\r\nBad Header\r\nX: y",
        b"GET http://127.0.0.1/ HTTP/1.1\r\nX: a\nInjected: b",
    ],
)
async def test_bad_requests_get_400(proxy: EgressProxy, line: bytes) -> None:
    before = _refused("bad_request")
    answer = await _exchange(proxy, line + b"\r\n" + _auth(proxy) + b"\r\n")
    assert _status(answer) == 400
    assert _refused("bad_request") == before + 1


async def test_chunked_request_bodies_are_refused(proxy: EgressProxy, site: Site) -> None:
    answer = await _exchange(proxy, f"POST {site.url('lecture.html')} HTTP/1.1\r\n".encode() + _auth(proxy)
                             + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert _status(answer) == 411
    assert site.seen == []


async def test_upstream_down_reads_as_offline(proxy: EgressProxy) -> None:
    from tests.media.realservers import free_port

    answer = await _exchange(proxy, f"GET http://127.0.0.1:{free_port()}/ HTTP/1.1\r\n".encode() + _auth(proxy)
                             + b"\r\n")
    assert _status(answer) == 502
    assert b"Connection refused" in answer  # ytdlp.classify: unreachable, the job waits for the uplink


async def test_connections_are_capped(site: Site) -> None:
    proxy = EgressProxy(parse_networks(["127.0.0.1/32"]), max_connections=2)
    await proxy.start()
    idle = [await asyncio.open_connection("127.0.0.1", proxy.port) for _ in range(2)]
    try:
        async with asyncio.timeout(5):
            while proxy.connections < 2:  # both are being served (waiting for their request heads)
                await asyncio.sleep(0.01)
        answer = await _exchange(proxy, f"GET {site.url('lecture.html')} HTTP/1.1\r\n".encode() + _auth(proxy)
                                 + b"\r\n")
        assert _status(answer) == 503
    finally:
        for _r, w in idle:
            w.close()
        await proxy.close()


async def test_idle_tunnels_are_closed(site: Site) -> None:
    proxy = EgressProxy(parse_networks(["127.0.0.1/32"]), idle_timeout_s=0.5)
    await proxy.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(f"CONNECT 127.0.0.1:{site.site.port} HTTP/1.1\r\n".encode() + _auth(proxy) + b"\r\n")
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        async with asyncio.timeout(5):
            assert await reader.read() == b""  # closed by the proxy after 0.5 s of silence both ways
        writer.close()
    finally:
        await proxy.close()


# ------------------------------------------------------------------------------------------- end to end


async def test_refused_redirect_ends_the_video_in_error_at_once(media_env_factory: Any, site: Site,
                                                                internal: Internal) -> None:
    env = await media_env_factory("disk", allowed_networks=["127.0.0.1/32"], max_attempts=5, retry_delay_s=1)
    [entry] = await env.add(site.url("redirect/lecture.html"))
    video = await env.wait_for(entry["id"], {"error", "available"}, timeout=30)
    assert video["availability"] == "error"
    assert video["last_error"] == (f"refused: address {INTERNAL_HOST} is loopback, link-local or private; "
                                   "add its range to egress.allowed_networks")
    assert video["attempts"] == 1  # not retried: the same redirect would be refused again
    assert video["download_attempts"][-1]["failure_kind"] == "refused"
    assert internal.hits == []
