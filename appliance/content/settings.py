"""Configuration section [content]: the ZIM library."""

from dataclasses import dataclass

from appliance.core.settings import setting

MIB = 1024 * 1024


@dataclass(frozen=True)
class ContentSettings:
    """[content]: ZIM discovery, caches and limits."""

    cluster_cache_bytes: int = setting(
        128 * MIB, help="libzim cluster cache per process, in bytes (decompressed clusters kept for reuse)",
        min=0, max=64 * 1024 * MIB)
    hot_cache_bytes: int = setting(
        64 * MIB, help="recently served entries kept per process, resolved with their headers and gzip body, "
        "answered without reading the archive (0 = off); one entry takes at most 1/16 of it", min=0)
    gzip_cache_bytes: int = setting(
        16 * MIB, help="compressed bodies of entries too big for the hot cache, kept per process so they are "
        "gzipped once", min=0)
    # Two per worker, at the HTTP processes' own priority: with one, or at a lower priority, 30 searchers
    # without pause beside a saturating article load waited 340-580 ms at p95 (the search processes got too
    # small a share of the CPU); with two at equal priority p95 was 245-330 ms and article p99 stayed near
    # the 50 ms goal (tests/bench/zim_vs_kiwix.py --parts search). A process takes memory only as it is used.
    search_processes: int = setting(2, help="full-text search processes per HTTP worker", min=1, max=16)
    suggest_processes: int = setting(1, help="title-suggestion processes per HTTP worker", min=1, max=16)
    search_niceness: int = setting(
        0, help="nice value added to search and suggest processes (0: the same priority as article serving; "
        "raise it to favour articles over searches on a busy box)",
        min=0, max=19)
    # Defaults by measurement (tests/bench/zim_vs_kiwix.py --parts search): 30 searchers with no pause on 2
    # HTTP workers put up to ~30 queries on one worker when connections land unevenly, so 32 lets a whole
    # class wait there with no 503; under a saturating article load a worker answered 22-38 searches a
    # second, so their p99 stayed near 1.1 s, and 2 s refuses only when the box is really overloaded.
    # A waiter costs a coroutine and its request; the count bound keeps that small for any client.
    query_queue_depth: int = setting(
        32, help="searches (and, separately, suggestions) that may wait in order for a busy process, per HTTP "
        "worker; more get 503 + Retry-After at once", min=0, max=1000)
    query_wait_s: float = setting(
        2.0, help="longest a search or suggestion waits for a process: one expected to wait longer is refused at "
        "once (503 + Retry-After), one still waiting then is refused", min=0.05, max=300)
    search_timeout_s: float = setting(10.0, help="a search or suggest taking longer answers 503", min=0.1, max=300)
    snippet_budget_ms: int = setting(
        150, help="time a search may spend building snippets for its page; later results come without one",
        min=0, max=10000)
    max_snippets: int = setting(25, help="snippets built per search page at most", min=0, max=25)
    search_cache_entries: int = setting(
        512, help="search result pages cached per HTTP worker (0 = off); keyed by books, block lists and query",
        min=0, max=100000)
    search_cache_ttl_s: float = setting(
        300.0, help="how long a cached search result page or suggestion list is reused", min=0)
    suggest_cache_entries: int = setting(
        2048, help="suggestion lists cached per HTTP worker (0 = off); keyed by book, block list and query",
        min=0, max=100000)
    max_query_chars: int = setting(200, help="longest search or suggest query accepted (400 beyond)",
                                   min=1, max=10000)
    scan_interval_s: float = setting(
        300.0, help="seconds between periodic scans of content_root/zim for added or removed archives (0 = off)",
        min=0)
    refresh_interval_s: float = setting(
        1.0, help="how often a process checks whether libraries, visibility or block lists changed", min=0.05)
    anonymous_facility_id: int = setting(
        1, help="facility whose anonymous_browsing flag and visibility apply to visitors who are not signed in",
        min=1)
    view_flush_interval_s: float = setting(
        2.0, help="seconds between batched writes of article views and reading time", min=0.05, max=300)
    view_batch_max: int = setting(500, help="views buffered before a write is forced", min=1, max=100000)
    pack_busy_fraction: float = setting(
        0.35, help="the content origin's connections stay in the primary until its event loop uses more than "
        "this share of a core (over 25 ms), then idle ones move to the HTTP workers (1 = off: every HTTP "
        "process listens and the kernel spreads connections over them)", min=0.05, max=1.0)
    upstream_catalog_url: str = setting(
        "https://library.kiwix.org", help="Kiwix OPDS catalog browsed by GET /api/v1/catalog/upstream")
    upstream_timeout_s: float = setting(10.0, help="time limit for one upstream catalog request", min=0.5)
    import_poll_interval_s: float = setting(
        2.0, help="how often the primary looks for queued imports", min=0.05, max=600)
