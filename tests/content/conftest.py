"""Fixtures of the content tests: archives built with libzim's writer plus the shared real ZIMs."""

import shutil
from pathlib import Path

import pytest

from tests.content.zimbuilder import build_zim, default_spec, truncated_copy

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture(scope="session")
def zim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with every kind of archive the tests need, built once per session."""
    root = tmp_path_factory.mktemp("zims")
    build_zim(root / "testbook.zim")
    build_zim(root / "noindex.zim", default_spec(index=False, name="noindex", title="No Index"))
    build_zim(root / "nomain.zim", default_spec(main=None, name="nomain", title="No Main"))
    build_zim(root / "empty.zim", default_spec(empty=True, name="empty", title="Empty"))
    truncated_copy(root / "testbook.zim", root / "corrupt.zim")
    (root / "notes.zim").write_text("this is a text file, not an archive\n")
    for real in ("example.zim", "zimfile.zim"):
        shutil.copy(DATA / real, root / real)
    return root


@pytest.fixture
def content_root(tmp_path: Path, zim_dir: Path) -> Path:
    """A fresh content root holding copies of the good test archives."""
    root = tmp_path / "zim"
    root.mkdir()
    for name in ("testbook.zim", "noindex.zim", "zimfile.zim"):
        shutil.copy(zim_dir / name, root / name)
    return root


# --------------------------------------------------------------------------- the running app

from collections.abc import AsyncIterator, Callable  # noqa: E402
from typing import Any  # noqa: E402

from aiohttp import web  # noqa: E402
from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from appliance.content.keys import CONTENT, CONTENT_SITE  # noqa: E402
from appliance.content.origin import PASS_COOKIE  # noqa: E402
from appliance.keys import DB  # noqa: E402
from appliance.web.sites import Front, FrontedRunner  # noqa: E402


async def sign_in(client: TestClient, username: str, password: str) -> dict[str, str]:
    """Sign in through identity's real login API; return headers carrying that session and its CSRF token."""
    resp = await client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    morsel = next(iter(resp.cookies.values()))
    # Each test user is its own browser: keep the cookie out of the shared jar and send it explicitly.
    client.session.cookie_jar.clear()
    return {"Cookie": f"{morsel.key}={morsel.value}", "X-CSRF-Token": body["data"]["csrf_token"]}


class FrontedTestServer(TestServer):
    """A test server whose connections go through the site's front, as the daemon's listeners do."""

    def __init__(self, app: web.Application, front: Front | None) -> None:
        super().__init__(app)
        self._front = front

    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        if self._front is None:
            return await super()._make_runner(**kwargs)
        return FrontedRunner(self.app, self._front, **kwargs)


async def start_content_site(client: TestClient) -> TestClient:
    """Serve the app's content origin too (the daemon binds it beside the app port); the caller closes it."""
    site = client.app[CONTENT_SITE]
    content = TestClient(FrontedTestServer(site.app, site.front))
    await content.start_server()
    site.bound_port = content.port
    return content


async def content_pass(client: TestClient, content: TestClient, headers: dict[str, str]) -> str:
    """What the reader page does: get a URL pass on the app origin, trade it for the cookie pass."""
    resp = await client.get("/api/v1/library/pass", headers=headers)
    assert resp.status == 200, await resp.text()
    url = (await resp.json())["data"]["url"]
    got = await content.get(url[url.index("/_pass"):], allow_redirects=False)
    assert got.status == 303, await got.text()
    content.session.cookie_jar.clear()
    return got.cookies[PASS_COOKIE].value


class Library:
    """A running app (and its content origin) with test archives, plus helpers to act as different users."""

    def __init__(self, client: TestClient, make_user: Callable[..., Any], content: TestClient) -> None:
        self.client = client
        self.content = content
        self._make_user = make_user
        self.service = client.app[CONTENT]
        self.user_ids: dict[str, int] = {}

    async def user(self, role: str = "learner", facility_id: int = 1, **kw: Any) -> dict[str, str]:
        """Create a user, sign them in, and return headers that act as their browser.

        The Cookie header carries the session and the content pass, as a browser sends both to both ports.
        """
        user = await self._make_user(self.client, role=role, facility_id=facility_id, **kw)
        headers = await sign_in(self.client, user["username"], user["password"])
        self.user_ids[headers["Cookie"]] = user["id"]
        passed = await content_pass(self.client, self.content, headers)
        headers["Cookie"] += f"; {PASS_COOKIE}={passed}"
        self.user_ids[headers["Cookie"]] = user["id"]
        return headers

    async def anonymous(self) -> dict[str, str]:
        """Headers of an anonymous browser that opened the reader (an anonymous content pass)."""
        return {"Cookie": f"{PASS_COOKIE}={await content_pass(self.client, self.content, {})}"}

    async def lib_id(self, slug: str) -> int:
        return int(await self.client.app[DB].fetchval("SELECT id FROM libraries WHERE slug = ?", (slug,)))

    async def show(self, slug: str, *facilities: int) -> None:
        """Make a library visible to facilities (directly, as an admin would)."""
        lib = await self.lib_id(slug)
        for fac in facilities or (1,):
            await self.client.app[DB].execute(
                "INSERT OR IGNORE INTO library_visibility (library_id, facility_id) VALUES (?, ?)", (lib, fac))
        await self.service.refresh(force=True)


@pytest.fixture
def content_config(config_factory: Callable[..., Any], tmp_path: Path, zim_dir: Path) -> Callable[..., Any]:
    """A config whose content root holds the good test archives (plus any extra names given)."""

    def make(*extra: str, **sections: Any) -> Any:
        zim = tmp_path / "content" / "zim"
        zim.mkdir(parents=True, exist_ok=True)
        for name in ("testbook.zim", "noindex.zim", "zimfile.zim", *extra):
            shutil.copy(zim_dir / name, zim / name)
        content = {"cluster_cache_bytes": 8 << 20, "view_flush_interval_s": 0.1, "refresh_interval_s": 0.05,
                   "scan_interval_s": 0, **sections.pop("content", {})}
        return config_factory(content=content, **sections)

    return make


@pytest.fixture
async def library(app_client: Any, content_config: Callable[..., Any], make_user: Any) -> AsyncIterator[Library]:
    """The full app serving the test archives (app and content origins), with identity's real sessions."""
    client = await app_client(content_config())
    content = await start_content_site(client)
    yield Library(client, make_user, content)
    await content.close()


@pytest.fixture
async def open_library() -> AsyncIterator[Callable[..., Any]]:
    """Make a Library of an app a test started itself (its content origin is closed afterwards)."""
    opened: list[TestClient] = []

    async def make(client: TestClient, make_user: Callable[..., Any]) -> Library:
        content = await start_content_site(client)
        opened.append(content)
        return Library(client, make_user, content)

    yield make
    for content in reversed(opened):
        await content.close()
