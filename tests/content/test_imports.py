"""Imports from a local HTTP server (resumable across a restart, checksum-verified) and the upstream catalog."""

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from appliance.content import opds
from appliance.keys import CONFIG
from tests.content.conftest import Library, sign_in

CALLS = web.AppKey("calls", list)
GATE = web.AppKey("gate", asyncio.Event)


def upstream_app(zim: Path, *, stall_first: bool = False, sha256: str | None = None,
                 fail_first: int = 0) -> web.Application:
    """A peer appliance / Kiwix mirror: the .zim with Range, a .sha256 sidecar and an OPDS feed."""
    data = zim.read_bytes()
    app = web.Application()
    app[CALLS] = []
    app[GATE] = asyncio.Event()

    async def zim_file(request: web.Request) -> web.StreamResponse:
        app[CALLS].append(request.headers.get("Range"))
        if len(app[CALLS]) <= fail_first:
            return web.Response(status=503, text="mirror overloaded")
        if stall_first and len(app[CALLS]) == 1:
            resp = web.StreamResponse(headers={"Content-Length": str(len(data))})
            await resp.prepare(request)
            await resp.write(data[:40000])
            await app[GATE].wait()  # the appliance restarts while this transfer hangs
            return resp
        return web.FileResponse(zim)

    async def sidecar(_r: web.Request) -> web.Response:
        return web.Response(text=f"{sha256 or hashlib.sha256(data).hexdigest()}  remote.zim\n")

    async def entries(request: web.Request) -> web.Response:
        book = opds.Book(uuid="11111111-2222-3333-4444-555555555555", slug="remote", name="remote",
                         title="Remote Book", description="From upstream", language="eng", creator="", publisher="",
                         date="2026-01-01", tags="", category="test", flavour="", article_count=38,
                         media_count=2, size=len(data), updated="2026-01-01T00:00:00Z", has_illustration=False,
                         file_name="remote.zim")
        books = opds.filter_books([book], {"lang": request.query.get("lang", "")})
        feed = opds.entries_feed(books, total=len(books), start=0, count=10, updated="2026-01-01T00:00:00Z",
                                 query={})
        return web.Response(body=feed.replace(b"/catalog/v2/download/11111111-2222-3333-4444-555555555555/",
                                              b"/files/"), content_type="application/atom+xml")

    app.router.add_get("/files/remote.zim", zim_file)
    app.router.add_get("/files/remote.zim.sha256", sidecar)
    app.router.add_get("/catalog/v2/entries", entries)
    return app


async def wait_import(library: Library, headers: dict[str, str], import_id: int, states: set[str]) -> dict[str, Any]:
    for _ in range(400):
        row = (await (await library.client.get(f"/api/v1/libraries/imports/{import_id}", headers=headers)).json())
        if row["data"]["state"] in states:
            return row["data"]
        await asyncio.sleep(0.05)
    raise AssertionError(f"import stuck: {row}")


async def test_upstream_browse_then_import(
    open_library: Any, aiohttp_server: Any, app_client: Any, content_config: Any,
                                           make_user: Any, zim_dir: Path) -> None:
    server = await aiohttp_server(upstream_app(zim_dir / "nomain.zim"))
    base = str(server.make_url("/")).rstrip("/")
    config = content_config(content={"upstream_catalog_url": base, "import_poll_interval_s": 0.05})
    library = await open_library(await app_client(config), make_user)
    admin = await library.user(role="system_admin")
    c = library.client
    browse = await (await c.get("/api/v1/catalog/upstream?lang=eng", headers=admin)).json()
    assert browse["meta"]["total"] == 1
    url = browse["data"][0]["download_url"]
    assert url == f"{base}/files/remote.zim"
    resp = await c.post("/api/v1/libraries/import", json={"url": url}, headers=admin)
    assert resp.status == 202
    job = (await resp.json())["data"]
    assert job["state"] == "queued"
    done = await wait_import(library, admin, job["id"], {"done", "failed"})
    assert done["state"] == "done", done
    assert (done["checksum_algo"], done["bytes_done"]) == ("sha256", (zim_dir / "nomain.zim").stat().st_size)
    await library.show("remote")
    learner = await library.user()
    assert (await library.content.get("/content/remote/a/algebra", headers=learner)).status == 200
    assert (await c.post("/api/v1/libraries/import", json={"url": url}, headers=admin)).status == 409
    for bad in ({"url": "file:///etc/passwd"}, {"url": f"{base}/x.txt"}, {"url": 5}, {}):
        assert (await c.post("/api/v1/libraries/import", json=bad, headers=admin)).status == 400
    assert (await c.post("/api/v1/libraries/import", json={"url": url}, headers=learner)).status == 403
    await server.close()
    resp = await c.get("/api/v1/catalog/upstream", headers=admin)
    assert resp.status == 503
    body = await resp.json()
    assert body["error"]["code"] == "upstream_unreachable"
    assert "cannot be reached" in body["error"]["message"]
    assert resp.headers["Retry-After"] == "60"


async def test_checksum_mismatch_fails(
    open_library: Any, aiohttp_server: Any, app_client: Any, content_config: Any,
                                       make_user: Any, zim_dir: Path) -> None:
    server = await aiohttp_server(upstream_app(zim_dir / "nomain.zim", sha256="0" * 64))
    library = await open_library(await app_client(content_config(content={"import_poll_interval_s": 0.05})), make_user)
    admin = await library.user(role="system_admin")
    resp = await library.client.post("/api/v1/libraries/import", headers=admin,
                                     json={"url": str(server.make_url("/files/remote.zim"))})
    failed = await wait_import(library, admin, (await resp.json())["data"]["id"], {"done", "failed"})
    assert failed["state"] == "failed"
    assert "sha256 mismatch" in failed["error"]
    root = library.client.app[CONFIG].paths.content_root / "zim"
    assert not (root / "remote.zim").exists()
    assert not list(root.glob(".import-*"))


@pytest.mark.slow
async def test_download_survives_restart(
    open_library: Any, aiohttp_server: Any, app_client: Any, content_config: Any,
                                         make_user: Any, zim_dir: Path) -> None:
    server = await aiohttp_server(upstream_app(zim_dir / "nomain.zim", stall_first=True))
    config = content_config(content={"import_poll_interval_s": 0.05})
    first = await open_library(await app_client(config), make_user)
    admin = await first.user(role="system_admin")
    resp = await first.client.post("/api/v1/libraries/import", headers=admin,
                                   json={"url": str(server.make_url("/files/remote.zim"))})
    import_id = (await resp.json())["data"]["id"]
    root = config.paths.content_root / "zim"
    for _ in range(200):
        parts = list(root.glob(".import-*"))
        if parts and parts[0].stat().st_size >= 32768:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("download never started")
    await first.client.close()  # the appliance stops mid-download
    server.app[GATE].set()
    second = await open_library(await app_client(config), make_user)
    headers = await sign_in(second.client, *(await _creds(second)))
    done = await wait_import(second, headers, import_id, {"done", "failed"})
    assert done["state"] == "done", done
    calls = server.app[CALLS]
    assert calls[0] is None
    assert calls[1].startswith("bytes=")
    assert int(calls[1][6:-1]) >= 32768
    assert (root / "remote.zim").read_bytes() == (zim_dir / "nomain.zim").read_bytes()


async def _creds(library: Library) -> tuple[str, str]:
    user = await library._make_user(library.client, role="system_admin")
    return user["username"], user["password"]


async def test_upstream_errors_are_retried_with_backoff(
    open_library: Any, aiohttp_server: Any, app_client: Any, content_config: Any,
                                                        make_user: Any, zim_dir: Path) -> None:
    server = await aiohttp_server(upstream_app(zim_dir / "nomain.zim", fail_first=2))
    library = await open_library(await app_client(content_config(content={"import_poll_interval_s": 0.05})), make_user)
    admin = await library.user(role="system_admin")
    resp = await library.client.post("/api/v1/libraries/import", headers=admin,
                                     json={"url": str(server.make_url("/files/remote.zim"))})
    done = await wait_import(library, admin, (await resp.json())["data"]["id"], {"done", "failed"})
    assert done["state"] == "done", done
    assert len(server.app[CALLS]) == 3


async def test_import_and_catalog_obey_the_egress_policy(
    open_library: Any, aiohttp_server: Any, app_client: Any, content_config: Any, make_user: Any, zim_dir: Path,
) -> None:
    """The production default (public addresses only): a loopback mirror is refused, not fetched."""
    server = await aiohttp_server(upstream_app(zim_dir / "nomain.zim"))
    base = str(server.make_url("/")).rstrip("/")
    config = content_config(content={"upstream_catalog_url": base, "import_poll_interval_s": 0.05},
                            egress={"allowed_networks": []})
    library = await open_library(await app_client(config), make_user)
    admin = await library.user(role="system_admin")
    resp = await library.client.post("/api/v1/libraries/import", headers=admin,
                                     json={"url": f"{base}/files/remote.zim"})
    failed = await wait_import(library, admin, (await resp.json())["data"]["id"], {"done", "failed"})
    assert failed["state"] == "failed"
    assert "refused by egress policy" in failed["error"]
    assert server.app[CALLS] == []  # neither the sidecar nor the file was ever asked for
    resp = await library.client.get("/api/v1/catalog/upstream", headers=admin)
    assert resp.status == 503
    assert (await resp.json())["error"]["details"]["reason"] == "refused by egress policy"
