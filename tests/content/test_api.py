"""Library management API: listing, visibility with audit, featured, favourites, block lists everywhere."""

import shutil
from pathlib import Path
from typing import Any

from appliance.keys import CONFIG, DB
from tests.content.conftest import Library


async def test_list_and_visibility_flow(library: Library) -> None:
    c = library.client
    admin = await library.user(role="facility_admin")
    learner = await library.user()
    resp = await c.get("/api/v1/libraries", headers=admin)
    body = await resp.json()
    assert {lib["slug"] for lib in body["data"]} == {"testbook", "noindex", "zimfile"}
    assert body["meta"]["total"] == 3
    lib = next(lib for lib in body["data"] if lib["slug"] == "testbook")
    assert lib["visible_facility_ids"] == []
    assert lib["has_fulltext_index"] is True
    assert (await (await c.get("/api/v1/libraries", headers=learner)).json())["data"] == []
    resp = await c.put(f"/api/v1/libraries/{lib['id']}/visibility", json={"facility_ids": [1]}, headers=admin)
    assert resp.status == 200
    assert (await resp.json())["data"]["visible_facility_ids"] == [1]
    listed = (await (await c.get("/api/v1/libraries", headers=learner)).json())["data"]
    assert [x["slug"] for x in listed] == ["testbook"]
    assert "visible_facility_ids" not in listed[0]
    audit = await c.app[DB].fetchall("SELECT action, details FROM library_audit")
    assert [(a["action"], a["details"]) for a in audit] == [("visibility", '{"before": [], "after": [1]}')]
    # a facility admin cannot grant another facility
    other = (await c.app[DB].execute("INSERT INTO facilities (name) VALUES ('B')")).lastrowid
    resp = await c.put(f"/api/v1/libraries/{lib['id']}/visibility", json={"facility_ids": [other]}, headers=admin)
    assert resp.status == 403
    assert (await c.put(f"/api/v1/libraries/{lib['id']}/visibility", json={"facility_ids": [1]},
                        headers=learner)).status == 403
    for bad in ({"facility_ids": "1"}, {"facility_ids": [True]}, {}):
        resp = await c.put(f"/api/v1/libraries/{lib['id']}/visibility", json=bad, headers=admin)
        assert resp.status == 400
    assert (await c.get("/api/v1/libraries?per_page=1000000", headers=admin)).status == 400
    assert (await c.get("/api/v1/libraries?state=nope", headers=admin)).status == 400
    assert (await c.get("/api/v1/libraries/999", headers=admin)).status == 404


async def test_featured_and_favorites(library: Library) -> None:
    c = library.client
    await library.show("testbook")
    lib_id = await library.lib_id("testbook")
    admin = await library.user(role="facility_admin")
    learner = await library.user()
    assert (await c.put(f"/api/v1/libraries/{lib_id}/featured", json={"featured": True}, headers=admin)).status == 200
    assert (await c.put(f"/api/v1/libraries/{lib_id}/featured", json={"featured": "yes"},
                        headers=admin)).status == 400
    assert (await c.put(f"/api/v1/libraries/{lib_id}/favorite", headers=learner)).status == 200
    got = (await (await c.get(f"/api/v1/libraries/{lib_id}", headers=learner)).json())["data"]
    assert (got["featured"], got["favorite"]) == (True, True)
    favs = (await (await c.get("/api/v1/libraries?visibility=favorite", headers=learner)).json())["data"]
    assert [f["id"] for f in favs] == [lib_id]
    assert (await c.delete(f"/api/v1/libraries/{lib_id}/favorite", headers=learner)).status == 200
    favs = (await (await c.get("/api/v1/libraries?visibility=favorite", headers=learner)).json())["data"]
    assert favs == []
    hidden = await library.lib_id("noindex")
    assert (await c.put(f"/api/v1/libraries/{hidden}/favorite", headers=learner)).status == 404


async def test_blocklist_enforced_everywhere(library: Library) -> None:
    c = library.client
    await library.show("testbook")
    lib_id = await library.lib_id("testbook")
    dept = await library.user(role="department_admin")
    fac_admin = await library.user(role="facility_admin")
    learner = await library.user()
    assert (await c.put(f"/api/v1/libraries/{lib_id}/blocklist", json={"patterns": ["secret/*"]},
                        headers=fac_admin)).status == 403
    resp = await c.put(f"/api/v1/libraries/{lib_id}/blocklist", json={"patterns": ["secret/*", "a/Photo*"]},
                       headers=dept)
    assert (await resp.json())["data"]["added"] == ["a/Photo*", "secret/*"]
    assert (await library.content.get("/content/testbook/secret/one", headers=learner)).status == 403
    cc = library.content
    assert (await cc.get("/content/testbook/a/photosynthesis", headers=learner)).status == 200  # not a match
    assert (await cc.get("/content/testbook/a/Photo", headers=learner)).status == 403  # the redirect itself
    search = await (await c.get("/api/v1/search?q=photosynthesis&per_page=25", headers=learner)).json()
    assert search["data"]
    assert not [h for h in search["data"] if h["path"].startswith("secret/")]
    sugg = await (await c.get("/api/v1/suggest?q=secret&book=testbook", headers=learner)).json()
    assert sugg["data"] == []
    for _ in range(15):
        resp = await library.content.get("/random?content=testbook", headers=learner, allow_redirects=False)
        assert "/secret/" not in resp.headers["Location"]
    history = (await (await c.get(f"/api/v1/libraries/{lib_id}/blocklist", headers=fac_admin)).json())["data"]
    assert history["patterns"] == ["a/Photo*", "secret/*"]
    assert history["history"][0]["added"] == ["a/Photo*", "secret/*"]
    await c.put(f"/api/v1/libraries/{lib_id}/blocklist", json={"patterns": []}, headers=dept)
    assert (await library.content.get("/content/testbook/secret/one", headers=learner)).status == 200
    assert (await c.put(f"/api/v1/libraries/{lib_id}/blocklist", json={"patterns": [""]},
                        headers=dept)).status == 400
    assert await c.app[DB].fetchval("SELECT COUNT(*) FROM library_audit WHERE action = 'blocklist'") == 2


async def test_rescan_adds_removes_and_isolates_bad_files(library: Library, zim_dir: Path) -> None:
    c = library.client
    await library.show("testbook")
    sysadmin = await library.user(role="system_admin")
    learner = await library.user()
    root = c.app[CONFIG].paths.content_root / "zim"
    for name in ("corrupt.zim", "notes.zim", "empty.zim", "nomain.zim"):
        shutil.copy(zim_dir / name, root / name)
    shutil.copy(zim_dir / "testbook.zim", root / "testbook copy.zim")  # same ZIM uuid twice
    (root / "noindex.zim").unlink()
    report = (await (await c.post("/api/v1/libraries/rescan", headers=sysadmin)).json())["data"]
    assert sorted(report["added"]) == ["corrupt", "empty", "nomain", "notes", "testbook_copy"]
    assert sorted(report["errors"]) == ["corrupt", "notes", "testbook_copy"]
    assert report["missing"] == ["noindex"]
    rows = {r["slug"]: r for r in await c.app[DB].fetchall("SELECT slug, state, error FROM libraries")}
    assert rows["corrupt"]["state"] == "error"
    assert "corrupted" in rows["corrupt"]["error"]
    assert rows["notes"]["error"] == "ValueError: not a ZIM file (bad magic number)"
    assert rows["noindex"]["state"] == "missing"
    assert rows["testbook_copy"]["error"].startswith("duplicate of ")
    assert (await library.content.get("/content/testbook/a/algebra", headers=learner)).status == 200
    listed = await (await c.get("/api/v1/libraries?state=error", headers=sysadmin)).json()
    assert {x["slug"] for x in listed["data"]} == {"corrupt", "notes", "testbook_copy"}
    assert (await library.content.get("/content/corrupt/x", headers=sysadmin)).status == 404
    await library.show("nomain")
    await library.show("empty")
    resp = await library.content.get("/content/nomain/", headers=learner)
    assert resp.status == 404
    assert "no main page" in (await resp.json())["error"]["message"]
    assert (await library.content.get("/random?content=empty", headers=learner)).status == 404
    assert (await c.post("/api/v1/libraries/rescan", headers=learner)).status == 403


async def test_rescan_on_a_worker_is_done_by_the_primary(open_library: Any, app_client: Any, content_config: Any,
                                                          make_user: Any, zim_dir: Path) -> None:
    from appliance.app import BUS_URL
    from appliance.core.process import ProcessRole

    config = content_config()
    primary = await open_library(await app_client(config), make_user)
    worker = await open_library(await app_client(config, role=ProcessRole.WORKER, bus_url=primary.client.app[BUS_URL]),
                     make_user)
    admin = await worker.user(role="system_admin")
    shutil.copy(zim_dir / "nomain.zim", config.paths.content_root / "zim" / "nomain.zim")
    scanned_before = primary.service.directory.generation
    resp = await worker.client.post("/api/v1/libraries/rescan", headers=admin)
    assert resp.status == 200
    assert (await resp.json())["data"]["added"] == ["nomain"]
    assert primary.service.directory.generation > scanned_before  # the primary did the scan
    assert "nomain" in worker.service.directory.by_slug
