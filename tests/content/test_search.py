"""Full-text search, title fallback, snippets under budget, suggestions, and the bounded process pools."""

import asyncio
from pathlib import Path

import pytest

from appliance.content import searchworker
from appliance.content.archives import inspect_archive
from appliance.content.blocklist import compile_source
from appliance.content.searchpool import BoundedPool, QueryClass, Saturated, SearchPools
from appliance.content.searchworker import BookRef
from appliance.content.snippets import html_text, query_terms, snippet


def ref(zim_dir: Path, name: str, block: tuple[str, ...] = ()) -> BookRef:
    info = inspect_archive(zim_dir / f"{name}.zim")
    return BookRef(name, str(zim_dir / f"{name}.zim"), info.uuid or "", compile_source(block))


def test_fulltext_with_snippets(zim_dir: Path) -> None:
    out = searchworker.search([ref(zim_dir, "testbook")], "photosynthesis", 0, 5, 1.0, 25)
    assert out.total >= 30
    assert len(out.hits) == 5
    assert {h.match for h in out.hits} == {"fulltext"}
    first = out.hits[0]
    assert first.path == "a/photosynthesis"
    assert first.title == "Photosynthesis"
    assert first.snippet
    assert "photosynthesis" in first.snippet.lower()
    assert len(first.snippet) <= 222
    assert "<" not in first.snippet
    assert "var x" not in first.snippet


def test_blocked_paths_never_returned(zim_dir: Path) -> None:
    book = ref(zim_dir, "testbook", ("secret/*",))
    out = searchworker.search([book], "photosynthesis", 0, 50, 1.0, 25)
    assert out.hits
    assert not any(h.path.startswith("secret/") for h in out.hits)


def test_snippet_budget(zim_dir: Path) -> None:
    out = searchworker.search([ref(zim_dir, "testbook")], "photosynthesis", 0, 30, 1.0, 25)
    assert len(out.hits) == 30
    assert sum(h.snippet is not None for h in out.hits) == 25
    assert out.snippets_truncated
    assert all(h.title for h in out.hits)
    none = searchworker.search([ref(zim_dir, "testbook")], "photosynthesis", 0, 10, 0.0, 25)
    assert all(h.snippet is None for h in none.hits)
    assert none.snippets_truncated


def test_title_fallback_without_index(zim_dir: Path) -> None:
    out = searchworker.search([ref(zim_dir, "noindex")], "Algebra", 0, 10, 1.0, 25)
    assert out.title_only_books == ["noindex"]
    assert [h.path for h in out.hits] == ["a/algebra"]
    assert out.hits[0].match == "title"


def test_multi_book_interleaves_and_pages(zim_dir: Path) -> None:
    books = [ref(zim_dir, "testbook"), ref(zim_dir, "nomain")]
    page1 = searchworker.search(books, "water", 0, 4, 1.0, 25)
    assert [h.book for h in page1.hits] == ["testbook", "nomain", "testbook", "nomain"]
    page2 = searchworker.search(books, "water", 4, 4, 1.0, 25)
    assert not {(h.book, h.path) for h in page1.hits} & {(h.book, h.path) for h in page2.hits}


def test_real_archive_search(zim_dir: Path) -> None:
    out = searchworker.search([ref(zim_dir, "zimfile")], "Ray Charles", 0, 5, 1.0, 25)
    assert out.total > 0
    assert all(h.path.startswith("A/") for h in out.hits)
    assert out.hits[0].snippet


def test_suggest(zim_dir: Path) -> None:
    got = searchworker.suggest(ref(zim_dir, "testbook", ("secret/*",)), "photo", 10)
    assert {"path": "a/photosynthesis", "title": "Photosynthesis"} in got
    assert len(searchworker.suggest(ref(zim_dir, "testbook"), "filler", 10)) == 10
    assert not searchworker.suggest(ref(zim_dir, "testbook", ("secret/*",)), "secret", 10)


def test_snippet_helpers() -> None:
    assert query_terms("The big BIG a") == ["big", "the"]
    page = b"<html><head><title>x</title></head><body><p>Hi &amp; bye</p></body></html>"
    assert html_text(page) == "Hi & bye"
    long = b"<p>" + b"word " * 200 + b"needle here " + b"word " * 200 + b"</p>"
    snip = snippet(long, ["needle"])
    assert "needle" in snip
    assert snip.startswith("…")
    assert snip.endswith("…")


async def test_pool_rejects_when_saturated(zim_dir: Path) -> None:
    pool = BoundedPool(QueryClass.SEARCH, processes=1, queue_depth=1, cluster_cache_bytes=1 << 20,
                       timeout_s=30)
    try:
        slow = [asyncio.ensure_future(pool.run(_sleep, 0.5)) for _ in range(2)]
        await asyncio.sleep(0.05)
        with pytest.raises(Saturated) as info:
            await pool.run(_sleep, 0)
        assert info.value.retry_after >= 1
        assert pool.rejected == 1
        assert await asyncio.gather(*slow) == [0.5, 0.5]
        assert pool.in_flight == 0
        assert await pool.run(_sleep, 0) == 0
    finally:
        pool.close()


async def test_pools_search_in_processes(zim_dir: Path) -> None:
    pools = SearchPools(search_processes=1, suggest_processes=1, queue_depth=2, cluster_cache_bytes=1 << 22,
                        search_timeout_s=30)
    try:
        book = ref(zim_dir, "testbook")
        out = await pools.search.run(searchworker.search, [book], "algebra", 0, 5, 0.5, 25)
        assert out.hits[0].path == "a/algebra"
        got = await pools.suggest.run(searchworker.suggest, book, "alg", 5)
        assert got[0]["path"] == "a/algebra"
    finally:
        pools.close()


def _sleep(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


def test_search_cache_keys_and_eviction() -> None:
    from appliance.content.searchcache import SearchCache

    a, b = BookRef("x", "/x.zim", "u1"), BookRef("x", "/x.zim", "u1", "^(?:secret/.*)$")
    cache = SearchCache(max_entries=2, ttl_s=60)
    cache.put(cache.key([a], "Water  Cycle", 0, 10), "first", "q=water")
    assert cache.get(cache.key([a], "water cycle", 0, 10)) == "first"
    assert cache.get(cache.key([b], "water cycle", 0, 10)) is None  # a block list changes the key
    assert cache.get(cache.key([a], "water cycle", 10, 10)) is None
    cache.put(cache.key([a], "2", 0, 10), 2, "q=2")
    cache.put(cache.key([a], "3", 0, 10), 3, "q=3")
    assert cache.get(cache.key([a], "water cycle", 0, 10)) is None
    assert list(cache.recent) == ["q=2", "q=3"]
    off = SearchCache(max_entries=0, ttl_s=60)
    off.put(off.key([a], "q", 0, 1), 1)
    assert off.get(off.key([a], "q", 0, 1)) is None
