"""View tracking (batched), the reading beacon and usage reports in JSON and CSV."""

import csv
import io

from appliance.keys import DB
from tests.content.conftest import Library


async def test_views_batched_and_reported(library: Library) -> None:
    c = library.client
    await library.show("testbook")
    alice = await library.user(username="alice")
    bob = await library.user(username="bob")
    admin = await library.user(role="facility_admin")
    for path in ("a/algebra", "a/algebra", "a/photosynthesis"):
        assert (await library.content.get(f"/content/testbook/{path}", headers=alice)).status == 200
    assert (await library.content.get("/content/testbook/a/algebra", headers=bob)).status == 200
    assert (await library.content.get("/content/testbook/img/logo.png", headers=bob)).status == 200  # not an article
    ranged = {**bob, "Range": "bytes=0-10"}
    assert (await library.content.get("/content/testbook/a/algebra", headers=ranged)).status == 206
    # Nothing is written on the request path: the rows arrive with the next batch.
    queued = len(library.service.recorder.views)
    assert queued + await c.app[DB].fetchval("SELECT COUNT(*) FROM article_views") == 4
    resp = await c.post("/api/v1/reading", json={"book": "testbook", "path": "a/algebra", "seconds": 30},
                        headers=alice)
    assert resp.status == 202
    await c.post("/api/v1/reading", json={"book": "testbook", "path": "a/algebra", "seconds": 15}, headers=alice)
    for bad in ({"book": "testbook", "path": "a/algebra", "seconds": 0},
                {"book": "testbook", "path": "a/algebra", "seconds": 100000},
                {"book": "testbook", "path": 5, "seconds": 3}, {"book": "nope", "path": "x", "seconds": 3}):
        assert (await c.post("/api/v1/reading", json=bad, headers=alice)).status in (400, 404)
    await library.service.recorder.flush()
    rows = await c.app[DB].fetchall("SELECT path, title, user_id FROM article_views ORDER BY id")
    assert [(r["path"], r["title"]) for r in rows] == [("a/algebra", "Algebra"), ("a/algebra", "Algebra"),
                                                      ("a/photosynthesis", "Photosynthesis"), ("a/algebra", "Algebra")]
    assert await c.app[DB].fetchval("SELECT seconds FROM reading_time") == 45
    report = (await (await c.get("/api/v1/reports/usage", headers=admin)).json())["data"]
    assert report["top_articles"][0]["path"] == "a/algebra"
    assert report["top_articles"][0]["views"] == 3
    assert report["top_articles"][0]["readers"] == 2
    learners = {r["name"]: r for r in report["learners"]}
    assert (learners["alice"]["views"], learners["alice"]["seconds"]) == (3, 45)
    assert (learners["bob"]["views"], learners["bob"]["seconds"]) == (1, 0)
    assert report["libraries"][0]["name"] == "testbook"
    assert report["facilities"][0]["views"] == 4
    assert report["days"][0]["views"] == 4
    assert report["days"][0]["seconds"] == 45
    resp = await c.get("/api/v1/reports/usage?format=csv&report=learners", headers=admin)
    assert resp.content_type == "text/csv"
    table = list(csv.DictReader(io.StringIO(await resp.text())))
    assert {r["name"]: r["seconds"] for r in table} == {"alice": "45", "bob": "0"}
    assert (await c.get("/api/v1/reports/usage", headers=alice)).status == 403
    assert (await c.get("/api/v1/reports/usage?from=2026-13-01", headers=admin)).status == 400
    assert (await c.get("/api/v1/reports/usage?format=xml", headers=admin)).status == 400
    empty = await (await c.get("/api/v1/reports/usage?from=2001-01-01&to=2001-01-02", headers=admin)).json()
    assert empty["data"]["top_articles"] == []


async def test_reports_are_facility_scoped(library: Library) -> None:
    c = library.client
    await library.show("testbook")
    other = (await c.app[DB].execute("INSERT INTO facilities (name) VALUES ('East')")).lastrowid
    await library.show("testbook", other)
    here = await library.user()
    there = await library.user(facility_id=other)
    admin_here = await library.user(role="facility_admin")
    await library.content.get("/content/testbook/a/algebra", headers=here)
    await library.content.get("/content/testbook/a/photosynthesis", headers=there)
    await library.service.recorder.flush()
    report = (await (await c.get("/api/v1/reports/usage", headers=admin_here)).json())["data"]
    assert [r["path"] for r in report["top_articles"]] == ["a/algebra"]
    assert (await c.get(f"/api/v1/reports/usage?facility_id={other}", headers=admin_here)).status == 403
