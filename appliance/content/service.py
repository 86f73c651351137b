"""The per-process content service: directory, archives, search pools, caches and the view recorder."""

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from libzim.reader import get_cluster_cache_current_size, set_cluster_cache_max_size

from appliance.bus.subjects import content_rescan
from appliance.content import metrics
from appliance.content.directory import Directory, Library, can_see
from appliance.content.hotcache import HotCache
from appliance.content.httpcache import GzipCache
from appliance.content.keys import CONTENT, CONTENT_SITE
from appliance.content.passes import PassSigner, load_or_create_key
from appliance.content.scanner import ScanReport, scan
from appliance.content.searchcache import SearchCache
from appliance.content.searchpool import SearchPools
from appliance.content.settings import ContentSettings
from appliance.content.tracking import ReadingClock, ViewRecorder
from appliance.core.blocking import register_pool, run_blocking
from appliance.core.errors import ApiError, not_found
from appliance.core.process import ProcessRole
from appliance.core.singleflight import SingleFlight
from appliance.db import Database
from appliance.keys import BUS, CONFIG, DB, RELOAD_HOOKS, ROLE, TASKS
from appliance.web.policy import Principal, maybe_principal

log = logging.getLogger(__name__)


@dataclass
class ContentService:
    """Everything the content routes share inside one process."""

    settings: ContentSettings
    db: Database
    directory: Directory
    pools: SearchPools
    gzip: GzipCache
    hot: HotCache
    recorder: ViewRecorder
    zim_root: object
    scan_lock: asyncio.Lock
    search_cache: SearchCache
    passes: PassSigner
    reading_clock: ReadingClock = field(default_factory=ReadingClock)
    search_flight: SingleFlight[Any] = field(default_factory=SingleFlight)
    suggest_cache: SearchCache = field(default_factory=lambda: SearchCache(0, 0))
    suggest_flight: SingleFlight[Any] = field(default_factory=SingleFlight)

    async def refresh(self, *, force: bool = False) -> None:
        """Pick up library changes made by any process."""
        await self.directory.refresh(self.db, asyncio.get_running_loop().time(), force=force)

    async def rescan(self) -> ScanReport:
        """Scan the content root now (one scan at a time per process) and reload."""
        async with self.scan_lock:
            report = await scan(self.db, self.zim_root)  # type: ignore[arg-type]
        await self.refresh(force=True)
        self.report_gauges()
        return report

    def report_gauges(self) -> None:
        """Library counts and cache sizes for /metrics."""
        counts: dict[str, int] = {"ready": 0, "error": 0, "missing": 0}
        for lib in self.directory.by_id.values():
            counts[lib.state.value] += 1
        for state, n in counts.items():
            metrics.LIBRARIES.labels(state).set(n)
        metrics.CLUSTER_CACHE_USED.set(get_cluster_cache_current_size())
        metrics.GZIP_CACHE_USED.set(self.gzip.used)
        metrics.HOT_CACHE_USED.set(self.hot.used)
        metrics.SERVED_OK.publish()

    async def readable(self, request: web.Request, slug: str) -> tuple[Principal | None, Library]:
        """The library a caller asks for, if they may read it (404 hides what they may not see).

        No database read: the directory (visibility, block lists) is kept current by the content-directory
        task every refresh_interval_s, and the principal comes from the authenticator's in-memory cache.
        """
        p = maybe_principal(request)
        if p is None and not self.directory.anonymous_allowed:
            # Only the content origin serves entries, and it has no sign-in page to send anyone to.
            raise ApiError(403, "pass_required", "open this book from the library (sign in again if asked)")
        lib = self.directory.by_slug.get(slug)
        if lib is None or not can_see(p, lib, self.directory.anonymous_facility()):
            raise not_found(f"no library named {slug[:100]!r}")
        if lib.state.value != "ready":
            raise ApiError(404, "library_unavailable", f"library {slug!r} is {lib.state.value}")
        return p, lib



async def content_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the service; the primary scans at start-up and runs the periodic scan and import loops."""
    config = app[CONFIG]
    settings: ContentSettings = config.content
    set_cluster_cache_max_size(settings.cluster_cache_bytes)
    register_pool("gzip", 2)  # compression of popular pages on a cache miss (zlib releases the GIL)
    metrics.CLUSTER_CACHE_MAX.set(settings.cluster_cache_bytes)
    db = app[DB]
    pools = SearchPools(search_processes=settings.search_processes, suggest_processes=settings.suggest_processes,
                        queue_depth=settings.query_queue_depth, cluster_cache_bytes=settings.cluster_cache_bytes,
                        search_timeout_s=settings.search_timeout_s, wait_s=settings.query_wait_s,
                        niceness=settings.search_niceness)
    service = ContentService(
        settings=settings, db=db,
        directory=Directory(settings.anonymous_facility_id, settings.refresh_interval_s),
        pools=pools, gzip=GzipCache(settings.gzip_cache_bytes), hot=HotCache(settings.hot_cache_bytes),
        recorder=ViewRecorder(db, settings.view_batch_max),
        zim_root=config.paths.content_root / "zim", scan_lock=asyncio.Lock(),
        search_cache=SearchCache(settings.search_cache_entries, settings.search_cache_ttl_s),
        suggest_cache=SearchCache(settings.suggest_cache_entries, settings.search_cache_ttl_s),
        passes=PassSigner(await run_blocking("io", load_or_create_key, config.paths.data_dir)),
    )
    app[CONTENT] = service
    # The content origin's app is started after this one (it shares this service), so it can still be filled.
    app[CONTENT_SITE].app[CONTENT] = service
    # Search processes start when a learner page is first opened (see routes_pages), not here:
    # an appliance nobody reads from, and every test app, does not need them.
    tasks = app[TASKS]
    subscription = None
    if app[ROLE] is ProcessRole.PRIMARY:
        await service.rescan()
        app[RELOAD_HOOKS].append(_rescan_hook(service))
        subscription = await app[BUS].nc.subscribe(content_rescan(), cb=_rescan_responder(service))
        if settings.scan_interval_s > 0:
            tasks.spawn("content-scan", _periodic_scan(service, settings.scan_interval_s))
        from appliance.content.importer import import_loop

        tasks.spawn("content-imports", lambda: import_loop(app))
    else:
        await service.refresh(force=True)
        app[RELOAD_HOOKS].append(_reload_hook(service))
    tasks.spawn("content-views", _flush_loop(service, settings.view_flush_interval_s))
    tasks.spawn("content-directory", _directory_loop(service, settings.refresh_interval_s))
    yield
    if subscription is not None:
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()
    try:
        await service.recorder.flush()
    except Exception:
        log.exception("final flush of article views failed")
    await asyncio.get_running_loop().run_in_executor(None, pools.close)


def _rescan_responder(service: ContentService):  # type: ignore[no-untyped-def]
    # Workers forward POST /api/v1/libraries/rescan here: only the primary scans and writes rows.
    async def respond(msg) -> None:  # type: ignore[no-untyped-def]
        try:
            body = {"data": (await service.rescan()).as_dict()}
        except Exception as exc:
            log.exception("rescan requested by a worker failed")
            body = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        await msg.respond(json.dumps(body).encode())
    return respond


def _rescan_hook(service: ContentService):  # type: ignore[no-untyped-def]
    async def hook() -> None:
        await service.rescan()
    return hook


def _reload_hook(service: ContentService):  # type: ignore[no-untyped-def]
    async def hook() -> None:
        await service.refresh(force=True)
    return hook


def _periodic_scan(service: ContentService, interval: float):  # type: ignore[no-untyped-def]
    async def loop() -> None:
        while True:
            await asyncio.sleep(interval)
            await service.rescan()
    return loop


def _directory_loop(service: ContentService, interval: float):  # type: ignore[no-untyped-def]
    # Library changes (visibility, block lists, hidden or replaced archives) reach the reading path within
    # `interval` (plus one cheap read) without any reading request waiting for the database.
    async def loop() -> None:
        while True:
            await asyncio.sleep(interval)
            await service.refresh()
    return loop


def _flush_loop(service: ContentService, interval: float):  # type: ignore[no-untyped-def]
    # Every process buffers its own views, so every process flushes them (workers included).
    async def loop() -> None:
        while True:
            await asyncio.sleep(interval)
            await service.recorder.flush()
            service.report_gauges()
    return loop
