"""Fixtures of the media tests: a sample mp4, a local video web site, SeaweedFS S3, both storage backends."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from appliance.media.storage.disk import DiskStorage
from appliance.media.storage.s3 import S3Storage
from tests.media.realservers import S3Server, VideoSite, build_site, make_sample_mp4, site_app, start_weed


@pytest.fixture(scope="session")
def sample_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 5-second H.264/AAC mp4 made by ffmpeg."""
    return make_sample_mp4(tmp_path_factory.mktemp("sample") / "sample.mp4")


@pytest.fixture
async def video_site(tmp_path: Path, sample_mp4: Path) -> AsyncIterator[VideoSite]:
    """A local web site with a <video> page, a playlist page, a non-video, and routes that 404 or hang."""
    root = tmp_path / "site"
    build_site(root, sample_mp4)
    hang = asyncio.Event()
    runner = web.AppRunner(site_app(root, hang), shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield VideoSite(base=f"http://127.0.0.1:{port}", root=root, port=port)
    finally:
        hang.set()
        await runner.cleanup()


@pytest.fixture(scope="session")
def sample_bytes(sample_mp4: Path) -> bytes:
    """The sample mp4's content."""
    return sample_mp4.read_bytes()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One SeaweedFS (`weed server -s3`) for the session, on free loopback ports."""
    server = start_weed(tmp_path_factory.mktemp("weed"))
    try:
        yield server
    finally:
        server.stop()


def make_s3_storage(endpoint: str, bucket: str, *, part_size: int = 5 * 1024 * 1024, timeout_s: float = 5.0,
                    sse: str = "auto") -> S3Storage:
    """An S3Storage against the test server."""
    return S3Storage(endpoint=endpoint, bucket=bucket, access_key="appliance", secret_key="appliance-secret",
                     secure=False, region=None, part_size=part_size, sse=sse, timeout_s=timeout_s)


@pytest.fixture(params=["disk", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    """The storage backend a test runs against: every storage and streaming test runs on both."""
    return str(request.param)


@pytest.fixture
async def storage(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[DiskStorage | S3Storage]:
    """A started storage of the parametrised backend (a fresh bucket per test for S3)."""
    if backend == "disk":
        store: DiskStorage | S3Storage = DiskStorage(tmp_path / "content-cache")
    else:
        server: S3Server = request.getfixturevalue("s3_server")
        store = make_s3_storage(server.endpoint, f"t-{secrets.token_hex(6)}")
    await store.start()
    try:
        yield store
    finally:
        await store.close()
