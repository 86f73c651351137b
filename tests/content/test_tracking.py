"""View tracking (batched), the reading beacon and usage reports in JSON and CSV."""

import asyncio
import csv
import io

from appliance.content.tracking import FIRST_BEACON_CAP_S, ReadingClock, ViewRecorder
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
    # a second beacon right away claims 15 s that have not passed: at most the jitter second (wall-clock cap)
    resp = await c.post("/api/v1/reading", json={"book": "testbook", "path": "a/algebra", "seconds": 15},
                        headers=alice)
    extra = (await resp.json())["data"]["credited_s"]
    assert extra <= 1
    total = 30 + extra
    for bad in ({"book": "testbook", "path": "a/algebra", "seconds": 0},
                {"book": "testbook", "path": "a/algebra", "seconds": 100000},
                {"book": "testbook", "path": 5, "seconds": 3}, {"book": "nope", "path": "x", "seconds": 3}):
        assert (await c.post("/api/v1/reading", json=bad, headers=alice)).status in (400, 404)
    await library.service.recorder.flush()
    rows = await c.app[DB].fetchall("SELECT path, title, user_id FROM article_views ORDER BY id")
    assert [(r["path"], r["title"]) for r in rows] == [("a/algebra", "Algebra"), ("a/algebra", "Algebra"),
                                                      ("a/photosynthesis", "Photosynthesis"), ("a/algebra", "Algebra")]
    assert await c.app[DB].fetchval("SELECT seconds FROM reading_time") == total
    report = (await (await c.get("/api/v1/reports/usage", headers=admin)).json())["data"]
    assert report["top_articles"][0]["path"] == "a/algebra"
    assert report["top_articles"][0]["views"] == 3
    assert report["top_articles"][0]["readers"] == 2
    learners = {r["name"]: r for r in report["learners"]}
    assert (learners["alice"]["views"], learners["alice"]["seconds"]) == (3, total)
    assert (learners["bob"]["views"], learners["bob"]["seconds"]) == (1, 0)
    assert report["libraries"][0]["name"] == "testbook"
    assert report["facilities"][0]["views"] == 4
    assert report["days"][0]["views"] == 4
    assert report["days"][0]["seconds"] == total
    resp = await c.get("/api/v1/reports/usage?format=csv&report=learners", headers=admin)
    assert resp.content_type == "text/csv"
    table = list(csv.DictReader(io.StringIO(await resp.text())))
    assert {r["name"]: r["seconds"] for r in table} == {"alice": str(total), "bob": "0"}
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


def test_reading_clock_credits_only_elapsed_time() -> None:
    clock = ReadingClock(max_users=2)
    assert clock.credit(1, 600, 100.0) == FIRST_BEACON_CAP_S + 1  # first beacon: what may have come before
    assert clock.credit(1, 600, 100.1) == 0  # a burst gets nothing more
    assert clock.credit(1, 600, 100.2) == 0  # and the jitter second does not add up
    assert clock.credit(1, 15, 115.0) == 15  # a normal 15 s flush after 15 s
    assert clock.credit(1, 15, 129.6) == 15  # the page's timer a little ahead of ours
    assert clock.credit(1, 600, 2000.0) == 600  # after a long pause: at most one beacon's worth
    assert clock.credit(1, 600, 2000.0) == 1  # the jitter second, once
    assert clock.credit(1, 600, 2000.0) == 0
    clock.credit(2, 5, 2000.0)
    clock.credit(3, 5, 2000.0)  # the oldest user is forgotten: bounded memory
    assert clock.credit(1, 600, 2001.0) == FIRST_BEACON_CAP_S + 1


async def test_beacon_burst_cannot_inflate_reading_time(library: Library) -> None:
    c = library.client
    await library.show("testbook")
    mallory = await library.user(username="mallory")
    for _ in range(30):
        resp = await c.post("/api/v1/reading", json={"book": "testbook", "path": "a/algebra", "seconds": 600},
                            headers=mallory)
        assert resp.status == 202
    await library.service.recorder.flush()
    assert await c.app[DB].fetchval("SELECT SUM(seconds) FROM reading_time") <= FIRST_BEACON_CAP_S + 2


async def _flush_under_way(library: Library) -> tuple[ViewRecorder, asyncio.Future[int]]:
    """One view queued, and a flush that has taken it and waits for the database thread."""
    await library.show("testbook")
    reader = await library.user(username="reader")
    assert (await library.content.get("/content/testbook/a/algebra", headers=reader)).status == 200
    recorder = library.service.recorder
    assert recorder.views
    flushing = asyncio.ensure_future(recorder.flush())
    for _ in range(20):  # a few loop turns: flush starts its write as a task of its own
        if not recorder.views:
            return recorder, flushing
        await asyncio.sleep(0)
    raise AssertionError("the flush did not take the queue")


async def test_a_flush_waits_for_the_write_in_progress(library: Library) -> None:
    # The periodic flush may have taken the queue and be writing it when another flush (shutdown, a test)
    # runs: that one must return only once those rows are committed, not find an empty queue and return.
    c = library.client
    recorder, in_progress = await _flush_under_way(library)
    await recorder.flush()
    assert await c.app[DB].fetchval("SELECT COUNT(*) FROM article_views") == 1
    assert await in_progress == 1


async def test_a_cancelled_flush_still_writes_what_it_took(library: Library) -> None:
    c = library.client
    recorder, flushing = await _flush_under_way(library)
    flushing.cancel()
    await recorder.flush()  # waits for the write the cancelled caller started
    assert await c.app[DB].fetchval("SELECT COUNT(*) FROM article_views") == 1
