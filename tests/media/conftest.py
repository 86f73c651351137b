"""Fixtures of the media tests: a sample mp4, a local video web site, SeaweedFS S3, both storage backends."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from appliance.keys import AUTHENTICATORS, DB
from appliance.media.keys import MEDIA
from appliance.media.service import MediaService
from appliance.media.storage.disk import DiskStorage
from appliance.media.storage.s3 import S3Storage
from appliance.web.policy import AuthVia, Principal, Role
from tests.media.realservers import S3Server, VideoSite, build_site, make_sample_mp4, site_app, start_weed


@pytest.fixture(scope="session")
def sample_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 5-second H.264/AAC mp4 made by ffmpeg."""
    return make_sample_mp4(tmp_path_factory.mktemp("sample") / "sample.mp4")


@pytest.fixture
def gate() -> asyncio.Event:
    """Holds the site's /hang and /gate routes until set."""
    return asyncio.Event()


@pytest.fixture
async def video_site(tmp_path: Path, sample_mp4: Path, gate: asyncio.Event) -> AsyncIterator[VideoSite]:
    """A local web site with a <video> page, a playlist page, a non-video, and routes that 404, hang or wait."""
    root = tmp_path / "site"
    build_site(root, sample_mp4)
    async with _serving(site_app(root, gate), root, gate) as site:
        yield site


@contextlib.asynccontextmanager
async def _serving(app: web.Application, root: Path, gate: asyncio.Event) -> AsyncIterator[VideoSite]:
    """Serve a site app on a free loopback port; release anything held by the gate before stopping."""
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield VideoSite(base=f"http://127.0.0.1:{port}", root=root, port=port)
    finally:
        gate.set()
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


# ---------------------------------------------------------------------------------------------- the full app

TEST_USER_HEADER = "X-Test-User"


async def header_authenticator(request: web.Request) -> Principal | None:
    """Test-only sign-in: `X-Test-User: <user id>` names a user row (as a bearer token would)."""
    raw = request.headers.get(TEST_USER_HEADER)
    if not raw:
        return None
    db = request.app[DB]
    row = await db.fetchone("SELECT * FROM users WHERE id = ?", (int(raw),))
    if row is None:
        return None
    extra = await db.fetchall("SELECT facility_id FROM user_facilities WHERE user_id = ?", (row["id"],))
    facilities = frozenset({int(row["facility_id"]), *(int(r[0]) for r in extra)})
    return Principal(user_id=row["id"], uuid=row["uuid"], username=row["username"], role=Role(row["role"]),
                     facility_id=row["facility_id"], facility_ids=facilities, via=AuthVia.TOKEN)


@dataclass
class MediaEnv:
    """A running appliance with the media feature and helpers to act as different users."""

    client: TestClient
    backend: str
    users: dict[str, dict[str, Any]]
    make_user: Any

    def h(self, who: str) -> dict[str, str]:
        """Headers that sign in as one of the fixture's users."""
        return {TEST_USER_HEADER: str(self.users[who]["id"])}

    async def user(self, name: str, **kwargs: Any) -> dict[str, str]:
        """Create another user and return its sign-in headers."""
        self.users[name] = await self.make_user(self.client, **kwargs)
        return self.h(name)

    @property
    def svc(self) -> MediaService:
        """The media service of the app."""
        return self.client.app[MEDIA]

    async def wait_for(self, video_id: int, states: set[str], timeout: float = 60.0,
                       who: str = "sysadmin") -> dict[str, Any]:
        """Poll the API until the video reaches one of `states`."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            resp = await self.client.get(f"/api/v1/videos/{video_id}", headers=self.h(who))
            body = await resp.json()
            if resp.status == 200 and body["data"]["availability"] in states:
                return dict(body["data"])
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"video {video_id} never reached {states}: {body}")
            await asyncio.sleep(0.2)

    async def add(self, *urls: str) -> list[dict[str, Any]]:
        """POST /api/v1/videos as the facility admin and return the created entries."""
        resp = await self.client.post("/api/v1/videos", json={"urls": list(urls)}, headers=self.h("admin"))
        body = await resp.json()
        assert resp.status == 202, body
        return list(body["data"])


def media_overrides(kind: str, request: pytest.FixtureRequest, **extra: Any) -> dict[str, Any]:
    """[media] settings for tests: quick retries, the chosen backend (loopback comes from the egress default)."""
    values: dict[str, Any] = {
        "retry_delay_s": 1, "uplink_wait_s": 1, "min_free_disk_mb": 1,
        "download_timeout_s": 60, "socket_timeout_s": 5, "sweep_grace_s": 0, "job_ack_wait_s": 10,
    }
    if kind == "s3":
        server: S3Server = request.getfixturevalue("s3_server")
        values.update({"backend": "s3", "s3_endpoint": server.endpoint, "s3_bucket": f"app-{secrets.token_hex(5)}",
                       "s3_access_key": "appliance", "s3_secret_key": "appliance-secret", "s3_secure": False,
                       "s3_part_size_mb": 5, "s3_timeout_s": 3})
    values.update(extra)
    return values


@pytest.fixture
def media_env_factory(app_client: Any, config_factory: Any, make_user: Any,
                      request: pytest.FixtureRequest) -> Any:
    """Start the full app with [media] overrides and sign-in headers for a few users."""

    async def make(kind: str = "disk", *, allowed_networks: list[str] | None = None, **media: Any) -> MediaEnv:
        # allowed_networks is the egress policy's (the test default allows loopback; [] tests refusals)
        egress = {} if allowed_networks is None else {"allowed_networks": allowed_networks}
        config = config_factory(media=media_overrides(kind, request, **media), egress=egress)
        client = await app_client(config)
        client.app[AUTHENTICATORS].insert(0, header_authenticator)
        users = {
            "sysadmin": await make_user(client, role="system_admin"),
            "admin": await make_user(client, role="facility_admin"),
            "learner": await make_user(client, role="learner"),
        }
        return MediaEnv(client, kind, users, make_user)

    return make


@pytest.fixture
async def media_env(media_env_factory: Any, backend: str) -> MediaEnv:
    """The app on the parametrised storage backend."""
    return await media_env_factory(backend)  # type: ignore[no-any-return]


@pytest.fixture
async def slow_video_site(tmp_path: Path, sample_mp4: Path, gate: asyncio.Event) -> AsyncIterator[VideoSite]:
    """The video site plus `slow.html`, whose mp4 (`/slow/lecture.mp4`) trickles out in 20 pieces over ~4 s."""
    root = tmp_path / "slow-site"
    build_site(root, sample_mp4)
    (root / "slow.html").write_text(
        "<!doctype html><html><head><title>Slow lecture</title></head>"
        '<body><video src="/slow/lecture.mp4"></video></body></html>'
    )

    async def trickle(request: web.Request) -> web.StreamResponse:
        data = (root / request.match_info["name"]).read_bytes()
        resp = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        resp.content_length = len(data)
        await resp.prepare(request)
        if request.method == "HEAD":
            return resp
        piece = -(-len(data) // 20)
        for start in range(0, len(data), piece):
            await resp.write(data[start:start + piece])
            await asyncio.sleep(0.2)  # a thin uplink: yt-dlp reports progress between pieces
        return resp

    app = site_app(root, gate)
    app.router.add_get("/slow/{name}", trickle)
    async with _serving(app, root, gate) as site:
        yield site
