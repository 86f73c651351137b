"""Resumable ZIM download against a real local HTTP server with Range support."""

import hashlib
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from appliance.content.downloads import (
    DownloadError,
    download,
    existing_size,
    fetch_sidecar,
    file_name_from_url,
    hash_file,
    parse_checksum,
)

STATE = web.AppKey("state", dict)


def make_server_app(zim: Path, *, cut_first_at: int | None = None, ignore_range: bool = False) -> web.Application:
    """Serves the ZIM with Range (FileResponse), its sha256 sidecar, and optionally a first broken transfer."""
    state = {"calls": 0, "ranges": []}
    data = zim.read_bytes()

    async def zim_handler(request: web.Request) -> web.StreamResponse:
        state["calls"] += 1
        state["ranges"].append(request.headers.get("Range"))
        if cut_first_at is not None and state["calls"] == 1:
            resp = web.StreamResponse(headers={"Content-Length": str(len(data))})
            await resp.prepare(request)
            await resp.write(data[:cut_first_at])
            request.transport.close()  # the uplink drops mid-transfer
            return resp
        if ignore_range:
            return web.Response(body=data)
        return web.FileResponse(zim)

    async def sidecar(_request: web.Request) -> web.Response:
        return web.Response(text=f"{hashlib.sha256(data).hexdigest()}  book.zim\n")

    app = web.Application()
    app[STATE] = state
    app.router.add_get("/files/book.zim", zim_handler)
    app.router.add_get("/files/book.zim.sha256", sidecar)
    return app


async def noop(_done: int, _total: int | None) -> None:
    return None


async def test_resume_after_cut(aiohttp_server, zim_dir: Path, tmp_path: Path) -> None:
    zim = zim_dir / "testbook.zim"
    server = await aiohttp_server(make_server_app(zim, cut_first_at=20000))
    url = str(server.make_url("/files/book.zim"))
    part = tmp_path / "x.part"
    progress: list[tuple[int, int | None]] = []

    async def record(done: int, total: int | None) -> None:
        progress.append((done, total))

    async with aiohttp.ClientSession() as session:
        with pytest.raises((DownloadError, aiohttp.ClientPayloadError)):
            await download(session, url, part, 0, record)
        have = existing_size(part)
        assert 0 < have <= 20000
        size = await download(session, url, part, have, record)
        assert server.app[STATE]["ranges"] == [None, f"bytes={have}-"]
        assert size == zim.stat().st_size
        assert part.read_bytes() == zim.read_bytes()
        assert progress[-1] == (size, size)
        algo, digest = await fetch_sidecar(session, url)
        assert (algo, digest) == ("sha256", hash_file(part, "sha256"))
        # Already complete (a restart after the last byte): 416 with the same total is success.
        assert await download(session, url, part, size, noop) == size


async def test_server_ignoring_range_restarts(aiohttp_server, zim_dir: Path, tmp_path: Path) -> None:
    zim = zim_dir / "testbook.zim"
    server = await aiohttp_server(make_server_app(zim, ignore_range=True))
    part = tmp_path / "x.part"
    part.write_bytes(b"garbage-from-before")
    async with aiohttp.ClientSession() as session:
        await download(session, str(server.make_url("/files/book.zim")), part, 19, noop)
    assert part.read_bytes() == zim.read_bytes()


async def test_missing_file_and_no_sidecar(aiohttp_server, zim_dir: Path, tmp_path: Path) -> None:
    server = await aiohttp_server(make_server_app(zim_dir / "testbook.zim"))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(DownloadError, match="HTTP 404"):
            await download(session, str(server.make_url("/files/nope.zim")), tmp_path / "p", 0, noop)
        assert await fetch_sidecar(session, str(server.make_url("/files/nope.zim"))) is None


@pytest.mark.parametrize("url", ["ftp://x/a.zim", "http://x/a.txt", "http://x/", "notaurl", "http://x/.a.zim",
                                 "http://x/a%2F..%2Fb.zim"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(ValueError, match="url must"):
        file_name_from_url(url)


def test_url_name_and_checksum_parsing() -> None:
    assert file_name_from_url("https://download.kiwix.org/zim/wikipedia_en_100_2024-06.zim?x=1") == (
        "wikipedia_en_100_2024-06.zim")
    assert parse_checksum("ABCDEF0123456789abcdef0123456789  f.zim", "md5") == "abcdef0123456789abcdef0123456789"
    assert parse_checksum("nothex", "md5") is None
    assert parse_checksum("", "sha256") is None
