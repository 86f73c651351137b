"""A class's burst of searches waits its turn; a flood is refused fast; suggestions are cached and run once."""

import asyncio
import contextlib
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from appliance.content import searchworker
from appliance.content.searchpool import BoundedPool, QueryClass, Saturated
from appliance.content.searchworker import BookRef
from appliance.keys import CONFIG
from tests.content.conftest import Library
from tests.content.test_search import _sleep, ref
from tests.content.zimbuilder import build_zim, default_spec

WORDS = ["photosynthesis", "algebra", "water", "plants", "light", "sugar", "equation", "variable", "numbers",
         "filler", "space", "path"]

MUSIC_WORDS = ["ray", "charles", "album", "music", "song", "records", "soul", "piano", "blind", "concert", "jazz",
               "gospel"]


def _pool(**kw: Any) -> BoundedPool:
    args: dict[str, Any] = {"processes": 1, "queue_depth": 16, "cluster_cache_bytes": 1 << 22, "timeout_s": 30,
                            "wait_s": 30}
    return BoundedPool(QueryClass.SEARCH, **{**args, **kw})


def test_suggest_keys() -> None:
    from appliance.content.searchcache import SearchCache

    a, b = BookRef("x", "/x.zim", "u1"), BookRef("x", "/x.zim", "u2")
    key = SearchCache.suggest_key
    assert key(a, "water  cycle", 10) == key(a, "water cycle", 10)
    assert key(a, "Water", 10) != key(a, "water", 10)  # a title-prefix match (no title index) is case-sensitive
    assert key(b, "water", 10) != key(a, "water", 10)  # a replaced archive
    assert key(a, "water", 10) != SearchCache.key([a], "water", 0, 10)  # never mixed up with a search page


async def test_burst_larger_than_the_processes_is_answered_in_order(zim_dir: Path) -> None:
    pool = _pool()
    books = [ref(zim_dir, "testbook")]
    try:
        await pool.run(searchworker.search, books, "warm", 0, 5, 1.0, 25)  # the process is started
        done: list[int] = []

        async def one(i: int) -> searchworker.SearchOutcome:
            out = await pool.run(searchworker.search, books, WORDS[i], 0, 10, 1.0, 25)
            done.append(i)
            return out

        outs = await asyncio.gather(*(one(i) for i in range(len(WORDS))))
        assert done == list(range(len(WORDS)))  # first come, first served
        assert outs[0].hits[0].path == "a/photosynthesis"
        assert outs[1].hits[0].path == "a/algebra"
        assert pool.rejected == 0
        assert pool.started == len(WORDS) + 1
        assert (pool.running, pool.waiting) == (0, 0)
        assert pool.service_s > 0
    finally:
        pool.close()


async def test_beyond_the_count_bound_refused_at_once_with_retry_after() -> None:
    pool = _pool(queue_depth=2)
    try:
        slow = [asyncio.ensure_future(pool.run(_sleep, 0.6)) for _ in range(3)]  # one runs, two wait
        await asyncio.sleep(0.05)
        assert (pool.running, pool.waiting) == (1, 2)
        assert pool.full
        started = time.perf_counter()
        with pytest.raises(Saturated) as info:
            await pool.run(_sleep, 0)
        assert time.perf_counter() - started < 0.05
        assert info.value.retry_after >= 1
        assert pool.rejected == 1
        assert await asyncio.gather(*slow) == [0.6] * 3
        assert (pool.running, pool.waiting, pool.started) == (0, 0, 3)
    finally:
        pool.close()


async def test_expected_wait_past_the_deadline_refused_at_once() -> None:
    pool = _pool(queue_depth=100, wait_s=0.5)
    try:
        assert await pool.run(_sleep, 0.3) == 0.3  # starts the process
        assert await pool.run(_sleep, 0.3) == 0.3
        assert 0.3 <= pool.service_s < 1.0
        running = asyncio.ensure_future(pool.run(_sleep, 0.3))
        queued = asyncio.ensure_future(pool.run(_sleep, 0.3))  # waits ~0.3 s: within the deadline
        await asyncio.sleep(0.05)
        assert pool.expected_wait() > pool.wait_s  # a third would wait ~0.6 s
        started = time.perf_counter()
        with pytest.raises(Saturated) as info:
            await pool.run(_sleep, 0)
        assert time.perf_counter() - started < 0.05
        assert info.value.retry_after >= 1
        assert await asyncio.gather(running, queued) == [0.3, 0.3]
        assert pool.expired == 0
    finally:
        pool.close()


async def test_waiting_past_the_deadline_refused_and_never_run() -> None:
    pool = _pool(wait_s=0.3)  # no estimate yet: the first waiter is admitted and must be cut off in time
    try:
        slow = asyncio.ensure_future(pool.run(_sleep, 1.5))
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        with pytest.raises(Saturated):
            await pool.run(_sleep, 0)
        waited = time.perf_counter() - started
        assert 0.25 < waited < 0.6
        assert (pool.expired, pool.waiting, pool.started) == (1, 0, 1)
        assert await slow == 1.5
        await asyncio.sleep(0.1)
        assert pool.started == 1  # the refused query never reached a process: no work left behind
        assert (pool.running, pool.waiting) == (0, 0)
    finally:
        pool.close()


async def test_a_caller_that_goes_away_leaves_the_queue() -> None:
    pool = _pool()
    try:
        slow = asyncio.ensure_future(pool.run(_sleep, 0.5))
        await asyncio.sleep(0.05)
        gone = asyncio.ensure_future(pool.run(_sleep, 5))
        after = asyncio.ensure_future(pool.run(_sleep, 0.1))
        await asyncio.sleep(0.05)
        assert pool.waiting == 2
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gone
        assert pool.waiting == 1
        assert await asyncio.gather(slow, after) == [0.5, 0.1]
        assert pool.started == 2  # the 5 s query of the client that left never ran
        assert (pool.running, pool.waiting) == (0, 0)
    finally:
        pool.close()


# --------------------------------------------------------------------------- through HTTP


def _config(content_config: Any, **content: Any) -> Any:
    # One test client is one address and one user: lift identity's rate limits, they are not under test.
    return content_config(content={"search_processes": 1, "suggest_processes": 1, **content},
                          auth={"api_rate_per_minute": 1_000_000, "api_burst": 100_000,
                                "api_address_rate_per_minute": 1_000_000, "api_address_burst": 100_000})


async def _ready(open_library: Any, app_client: Any, config: Any, make_user: Any) -> tuple[Library, dict[str, str]]:
    library = await open_library(await app_client(config), make_user)
    await library.show("testbook")
    await library.show("zimfile")
    h = await library.user()
    assert (await library.client.get("/api/v1/search?q=warm&books=testbook", headers=h)).status == 200
    assert (await library.client.get("/api/v1/suggest?q=wa&book=testbook", headers=h)).status == 200
    return library, h


async def test_http_burst_all_answered(open_library: Any, app_client: Any, content_config: Any,
                                       make_user: Any) -> None:
    library, h = await _ready(open_library, app_client, _config(content_config, search_cache_entries=0),
                              make_user)
    pool = library.service.pools.search
    # Hold the only search process so the whole burst has to queue behind it.
    holder = asyncio.ensure_future(pool.run(_sleep, 0.5))
    await asyncio.sleep(0.05)
    c = library.client
    burst = await asyncio.gather(*(c.get(f"/api/v1/search?q={w}&books=testbook,zimfile&per_page=25", headers=h)
                                   for w in WORDS + MUSIC_WORDS))
    assert [r.status for r in burst] == [200] * len(burst)
    assert (await burst[0].json())["data"][0]["path"] == "a/photosynthesis"
    assert await holder == 0.5
    assert pool.rejected == 0
    assert pool.started == 2 + len(burst)  # warm-up, holder, then each search once


async def test_http_flood_refused_fast_before_the_session(open_library: Any, app_client: Any, content_config: Any,
                                                         make_user: Any) -> None:
    library, h = await _ready(open_library, app_client,
                              _config(content_config, query_queue_depth=2, search_cache_entries=0), make_user)
    pool = library.service.pools.search
    held = [asyncio.ensure_future(pool.run(_sleep, 0.6)) for _ in range(3)]  # one runs, two wait: full
    await asyncio.sleep(0.05)
    c = library.client
    started = time.perf_counter()
    resp = await c.get("/api/v1/search?q=algebra&books=testbook", headers=h)
    assert time.perf_counter() - started < 0.5
    assert resp.status == 503
    body = await resp.json()
    assert body["error"]["code"] == "search_busy"
    assert int(resp.headers["Retry-After"]) >= 1
    assert body["error"]["details"]["retry_after"] == int(resp.headers["Retry-After"])
    # Refused before the session lookup: a request without any session gets the same 503, not a 401.
    assert (await c.get("/api/v1/search?q=algebra")).status == 503
    # Suggestions keep their own queue: a search flood does not slow them.
    assert (await c.get("/api/v1/suggest?q=alg&book=testbook", headers=h)).status == 200
    await asyncio.gather(*held)
    assert (await c.get("/api/v1/search?q=algebra&books=testbook", headers=h)).status == 200


async def test_http_search_waiting_past_the_deadline(open_library: Any, app_client: Any, content_config: Any,
                                                     make_user: Any) -> None:
    library, h = await _ready(open_library, app_client,
                              _config(content_config, query_wait_s=0.3, search_cache_entries=0), make_user)
    pool = library.service.pools.search
    pool.service_s = 0.01  # the estimate says the wait is short; the deadline still holds
    holder = asyncio.ensure_future(pool.run(_sleep, 1.5))
    await asyncio.sleep(0.05)
    before = pool.started
    started = time.perf_counter()
    resp = await library.client.get("/api/v1/search?q=algebra&books=testbook", headers=h)
    assert resp.status == 503
    assert 0.25 < time.perf_counter() - started < 1.2
    assert int(resp.headers["Retry-After"]) >= 1
    assert await holder == 1.5
    await asyncio.sleep(0.1)
    assert pool.started == before and pool.waiting == 0  # nothing was left queued behind the refusal


async def test_suggest_cache_hit_miss_and_blocklist(open_library: Any, app_client: Any, content_config: Any,
                                                    make_user: Any) -> None:
    library, h = await _ready(open_library, app_client, _config(content_config), make_user)
    c = library.client
    cache, pool = library.service.suggest_cache, library.service.pools.suggest
    before = pool.started
    first = await c.get("/api/v1/suggest?q=secret&book=testbook", headers=h)
    assert {s["path"] for s in (await first.json())["data"]} == {"secret/one", "secret/two"}
    assert pool.started == before + 1
    hits = cache.hits
    again = await c.get("/api/v1/suggest?q=%20secret%20&book=testbook", headers=h)  # trimmed: the same key
    assert (await again.json())["data"] == (await first.json())["data"]
    assert (cache.hits, pool.started) == (hits + 1, before + 1)
    # A changed block list gives a new key: the blocked titles are gone at once, not after the TTL.
    dept = await library.user(role="department_admin")
    lib_id = await library.lib_id("testbook")
    resp = await c.put(f"/api/v1/libraries/{lib_id}/blocklist", json={"patterns": ["secret/*"]}, headers=dept)
    assert resp.status == 200
    await library.service.refresh(force=True)
    blocked = await c.get("/api/v1/suggest?q=secret&book=testbook", headers=h)
    assert (await blocked.json())["data"] == []
    assert pool.started == before + 2
    # While the queue is full, a suggestion the cache holds still answers (the guard lets it through).
    pool.running, pool.queue_depth = pool.processes, 0
    try:
        assert (await c.get("/api/v1/suggest?q=secret&book=testbook", headers=h)).status == 200
        busy = await c.get("/api/v1/suggest?q=algeb&book=testbook", headers=h)
        assert busy.status == 503
        assert (await busy.json())["error"]["code"] == "suggest_busy"
    finally:
        pool.running, pool.queue_depth = 0, library.service.settings.query_queue_depth


async def test_suggest_cache_fresh_after_a_replaced_archive(open_library: Any, app_client: Any,
                                                            content_config: Any, make_user: Any,
                                                            tmp_path: Path) -> None:
    library, h = await _ready(open_library, app_client, _config(content_config), make_user)
    c = library.client
    old = await (await c.get("/api/v1/suggest?q=photo&book=testbook", headers=h)).json()
    assert "a/photosynthesis" in {s["path"] for s in old["data"]}
    # The same file name, a different archive (new ZIM uuid): an edition update of the book.
    newer = build_zim(tmp_path / "newer.zim", default_spec(articles={
        "home": ("Home", "The second edition."), "a/photon": ("Photon", "A particle of light.")}))
    root = c.app[CONFIG].paths.content_root / "zim"
    replaced = root / "testbook.zim.new"
    shutil.copy(newer, replaced)
    os.replace(replaced, root / "testbook.zim")
    sysadmin = await library.user(role="system_admin")
    assert (await c.post("/api/v1/libraries/rescan", headers=sysadmin)).status == 200
    await library.service.refresh(force=True)
    fresh = await (await c.get("/api/v1/suggest?q=photo&book=testbook", headers=h)).json()
    assert [s["path"] for s in fresh["data"]] == ["a/photon"]


async def test_identical_concurrent_suggestions_run_once(open_library: Any, app_client: Any, content_config: Any,
                                                         make_user: Any) -> None:
    library, h = await _ready(open_library, app_client, _config(content_config, suggest_cache_entries=0),
                              make_user)
    pool = library.service.pools.suggest
    holder = asyncio.ensure_future(pool.run(_sleep, 0.4))  # so the first ask is still waiting when the rest come
    await asyncio.sleep(0.05)
    before = pool.started
    c = library.client
    same = await asyncio.gather(*(c.get("/api/v1/suggest?q=photo&book=testbook", headers=h) for _ in range(12)))
    assert [r.status for r in same] == [200] * 12
    bodies = [(await r.json())["data"] for r in same]
    assert all(b == bodies[0] for b in bodies)
    assert "a/photosynthesis" in {s["path"] for s in bodies[0]}
    assert pool.started == before + 1  # twelve learners, one run
    assert await holder == 0.4
    # Without a flight in progress (and the cache off), the next ask runs again.
    assert (await c.get("/api/v1/suggest?q=photo&book=testbook", headers=h)).status == 200
    assert pool.started == before + 2


async def test_one_slow_query_does_not_close_the_queue() -> None:
    pool = _pool(wait_s=0.3)
    try:
        assert await pool.run(_sleep, 0) == 0  # starts the process: not a sample
        assert await pool.run(_sleep, 0.6) == 0.6
        assert pool.service_s == pytest.approx(0.3)  # capped at wait_s
        assert pool.expected_wait() == 0 and not pool.full
    finally:
        pool.close()
