"""Bad input from the issue: each gets a clear 4xx, nothing crashes, everything else keeps serving."""

import pytest

from tests.content.conftest import Library


@pytest.fixture
async def reader(library: Library) -> dict[str, str]:
    await library.show("testbook")
    await library.show("noindex")
    return await library.user()


async def _still_serving(library: Library, h: dict[str, str]) -> None:
    assert (await library.content.get("/content/testbook/a/algebra", headers=h)).status == 200


async def test_paths(library: Library, reader: dict[str, str]) -> None:
    c = library.content
    long = "a/" + "x" * 5000
    resp = await c.get(f"/content/testbook/{long}", headers=reader)
    assert resp.status == 414
    assert (await resp.json())["error"]["code"] == "path_too_long"
    resp = await c.get("/content/testbook/a/%00x", headers=reader)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "invalid_path"
    for bad in ("a/%zz", "a/%", "a/%C3%28", "a/%E2%82"):
        resp = await c.get(f"/content/testbook/{bad}", headers=reader)
        assert resp.status == 404, bad  # kept literally, as kiwix-serve does: no such entry
        assert (await resp.json())["error"]["code"] == "not_found"
    await _still_serving(library, reader)


async def test_queries(library: Library, reader: dict[str, str]) -> None:
    c = library.client
    # 10,000 characters exceed aiohttp's request-line limit (8190): its parser answers 400 itself.
    resp = await c.get("/api/v1/search", params={"q": "x" * 10000}, headers=reader)
    assert resp.status == 400
    resp = await c.get("/api/v1/search", params={"q": "x" * 3000}, headers=reader)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "query_too_long"
    resp = await c.get("/api/v1/search?q=water&per_page=1000000", headers=reader)
    assert resp.status == 400
    assert (await resp.json())["error"]["details"]["parameter"] == "per_page"
    assert (await c.get("/api/v1/search?q=water&page=abc", headers=reader)).status == 400
    assert (await c.get("/api/v1/search?q=water&page=100", headers=reader)).status == 400
    assert (await c.get("/api/v1/search?q=", headers=reader)).status == 400
    assert (await c.get("/api/v1/search?q=a%00b", headers=reader)).status == 400
    resp = await c.get("/api/v1/search?q=water&books=zimfile,nope", headers=reader)
    assert resp.status == 400
    assert (await resp.json())["error"]["details"]["unknown"] == ["zimfile", "nope"]  # zimfile is hidden
    assert (await c.get("/api/v1/suggest?q=" + "y" * 3000 + "&book=testbook", headers=reader)).status == 400
    assert (await c.get("/api/v1/suggest?q=alg", headers=reader)).status == 400
    await _still_serving(library, reader)


async def test_search_and_suggest_answers(library: Library, reader: dict[str, str]) -> None:
    c = library.client
    body = await (await c.get("/api/v1/search?q=algebra&per_page=5", headers=reader)).json()
    assert body["meta"]["title_only_books"] == ["noindex"]
    hits = {(h["book"], h["path"]): h for h in body["data"]}
    assert hits[("testbook", "a/algebra")]["match"] == "fulltext"
    assert "equation" in hits[("testbook", "a/algebra")]["snippet"]
    assert hits[("noindex", "a/algebra")]["match"] == "title"
    assert hits[("testbook", "a/algebra")]["url"] == "/content/testbook/a/algebra"
    odd = await (await c.get("/api/v1/search?q=ampersand&books=testbook", headers=reader)).json()
    assert odd["data"][0]["url"] == "/content/testbook/a/q%3Fx%26y%23z"
    sugg = await (await c.get("/api/v1/suggest?q=filler&book=testbook", headers=reader)).json()
    assert len(sugg["data"]) == 10


async def test_anonymous_browsing_per_facility(library: Library) -> None:
    from appliance.keys import DB

    c = library.client
    await library.show("testbook")
    assert (await library.content.get("/content/testbook/a/algebra")).status == 403
    assert (await c.get("/api/v1/search?q=algebra")).status == 401
    await c.app[DB].execute("UPDATE facilities SET anonymous_browsing = 1 WHERE id = 1")
    await library.service.refresh(force=True)
    assert (await library.content.get("/content/testbook/a/algebra")).status == 200
    assert (await library.content.get("/content/zimfile/A/index")).status == 404  # not visible to facility 1
    assert (await c.get("/api/v1/search?q=algebra")).status == 200
    assert (await c.get("/library")).status == 200


async def test_cached_search_answers_while_pool_is_full(library: Library, reader: dict[str, str]) -> None:
    c = library.client
    first = await c.get("/api/v1/search?q=photosynthesis&books=testbook", headers=reader)
    assert first.status == 200
    pool = library.service.pools.search
    pool.running, pool.queue_depth = pool.processes, 0  # every process busy, no place to wait
    try:
        again = await c.get("/api/v1/search?q=photosynthesis&books=testbook", headers=reader)
        assert again.status == 200
        assert (await again.json())["data"] == (await first.json())["data"]
        busy = await c.get("/api/v1/search?q=algebra&books=testbook", headers=reader)
        assert busy.status == 503
        assert (await busy.json())["error"]["code"] == "search_busy"
        assert int(busy.headers["Retry-After"]) >= 1
    finally:
        pool.running, pool.queue_depth = 0, library.service.settings.query_queue_depth
