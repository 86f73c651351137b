"""Helpful links (API, visibility per facility, local icons, learner home, staff page) and the staff page that
browses the online catalog."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from appliance.links.service import leaves_lan
from tests.conftest import MakeFacility, MakeUser
from tests.content.test_imports import upstream_app
from tests.content.zimbuilder import build_zim
from tests.web.test_pages import HTML, csrf_of, form_login

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


async def api_login(client: TestClient, user: dict[str, str]) -> dict[str, str]:
    resp = await client.post("/api/v1/auth/login", json={"username": user["username"], "password": user["password"]})
    return {"X-CSRF-Token": (await resp.json())["data"]["csrf_token"]}


def test_which_links_leave_the_lan() -> None:
    assert leaves_lan("https://www.khanacademy.org/math")
    assert leaves_lan("http://8.8.8.8/")
    assert not leaves_lan("http://10.1.2.3/wiki")
    assert not leaves_lan("http://kolibri.unit-a.lan:8080/")
    assert not leaves_lan("http://printer/")
    assert not leaves_lan("/library")


async def test_links_api_visibility_and_icon(client: TestClient, make_user: MakeUser,
                                            make_facility: MakeFacility) -> None:
    other = await make_facility(client, "Unit B")
    admin = await make_user(client, role="facility_admin")
    learner = await make_user(client)
    stranger = await make_user(client, facility_id=other)
    h = await api_login(client, admin)
    resp = await client.post("/api/v1/links", json={"title": "Khan <Academy>", "url": "https://khan.example/",
                                                    "description": "Maths", "facility_ids": [1]}, headers=h)
    assert resp.status == 201, await resp.text()
    link = (await resp.json())["data"]
    assert link["leaves_lan"] is True and link["facility_ids"] == [1]
    bad = await client.post("/api/v1/links", json={"title": "x", "url": "javascript:alert(1)"}, headers=h)
    assert bad.status == 400 and (await bad.json())["error"]["details"]["field"] == "url"
    assert (await client.post("/api/v1/links", json={"title": "x", "url": "/x", "facility_ids": [other]},
                              headers=h)).status == 403  # not a facility this admin manages
    svg = await client.put(f"/api/v1/links/{link['id']}/icon", data=b"<svg onload=alert(1)>", headers=h)
    assert svg.status == 400  # no SVG: it could carry script
    resp = await client.put(f"/api/v1/links/{link['id']}/icon", data=PNG, headers=h)
    assert resp.status == 200 and (await resp.json())["data"]["icon_url"] == f"/links/{link['id']}/icon"
    await client.post("/api/v1/auth/logout", headers=h)

    await form_login(client, learner["username"], learner["password"])
    home = await (await client.get("/", headers=HTML)).text()
    assert "Khan &lt;Academy&gt;" in home and "Leaves the local network" in home
    icon = await client.get(f"/links/{link['id']}/icon")
    assert icon.status == 200 and icon.content_type == "image/png" and await icon.read() == PNG
    await client.post("/logout", data={"csrf_token": await csrf_of(client, "/")}, headers=HTML)

    await form_login(client, stranger["username"], stranger["password"])
    assert "Khan" not in await (await client.get("/", headers=HTML)).text()  # another unit does not see it
    assert (await client.get(f"/links/{link['id']}/icon")).status == 404


async def test_staff_page_adds_edits_and_deletes(client: TestClient, make_user: MakeUser) -> None:
    admin = await make_user(client, role="facility_admin")
    await form_login(client, admin["username"], admin["password"])
    token = await csrf_of(client, "/admin/links")
    resp = await client.post("/admin/links", data={"csrf_token": token, "title": "Library", "url": "/library",
                                                   "description": "", "facility": "1"}, headers=HTML)
    assert resp.status == 200 and "Saved." in await resp.text()
    page = await resp.text()
    link_id = re.search(r'id="link-(\d+)"', page)
    assert link_id is not None
    resp = await client.post("/admin/links", data={"csrf_token": token, "title": "", "url": "/x"}, headers=HTML)
    assert resp.status == 400 and 'class="flash error"' in await resp.text()
    resp = await client.post(f"/admin/links/{link_id.group(1)}", data={"csrf_token": token, "title": "Books",
                                                                       "url": "/library", "facility": "1"},
                             headers=HTML)
    assert "Books" in await resp.text()
    resp = await client.post(f"/admin/links/{link_id.group(1)}", data={"csrf_token": token, "delete": "1"},
                             headers=HTML)
    assert 'id="link-' not in await resp.text()


async def test_catalog_browse_and_import_from_the_staff_page(aiohttp_server: Any, app_client: Any,
                                                             config_factory: Any, make_user: MakeUser,
                                                             tmp_path: Path) -> None:
    """A system admin browses a (local) upstream catalog, imports a book with its button, sees it queued;
    an unreachable catalog is said in a sentence, not a stack of JSON."""
    build_zim(tmp_path / "remote-source.zim")
    server = await aiohttp_server(upstream_app(tmp_path / "remote-source.zim"))
    base = str(server.make_url("/")).rstrip("/")
    client = await app_client(config_factory(content={"upstream_catalog_url": base, "import_poll_interval_s": 60}))
    admin = await make_user(client, role="system_admin")
    await form_login(client, admin["username"], admin["password"])
    page = await (await client.get("/admin/libraries/catalog?lang=eng", headers=HTML)).text()
    assert "Remote Book" in page and "1 book in the catalog" in page
    token = await csrf_of(client, "/admin/libraries/catalog?lang=eng")
    resp = await client.post("/admin/libraries/import", data={"csrf_token": token, "url": f"{base}/files/remote.zim"},
                             headers=HTML)
    text = await resp.text()
    assert resp.status == 200 and "The import is queued." in text and "remote.zim" in text
    assert "<progress" in text or "queued" in text
    await server.close()
    page = await (await client.get("/admin/libraries/catalog", headers=HTML)).text()
    assert "The online catalog cannot be reached right now" in page
    learner = await make_user(client)
    await client.post("/logout", data={"csrf_token": await csrf_of(client, "/")}, headers=HTML)
    await form_login(client, learner["username"], learner["password"])
    assert (await client.get("/admin/libraries/catalog", headers=HTML)).status == 403
