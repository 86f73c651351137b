"""Wires the media feature into the application: routes, cleanup contexts, middlewares."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from appliance.bus.specs import ensure_streams
from appliance.core.blocking import register_pool
from appliance.core.process import ProcessRole
from appliance.keys import BUS, CLOCK, CONFIG, DB, ROLE, TASKS
from appliance.media import api, pages, stream, upload  # noqa: F401 - upload registers on api.routes
from appliance.media.blocking import POOL
from appliance.media.egress import EgressProxy
from appliance.media.jobs import JobConsumer, stream_spec
from appliance.media.keys import MEDIA
from appliance.media.maintenance import sweep
from appliance.media.models import Availability
from appliance.media.service import MediaService
from appliance.media.ssrf import allowed_networks
from appliance.media.storage import StorageError

log = logging.getLogger(__name__)
CONSUMER = web.AppKey("media_consumer", JobConsumer)
EGRESS = web.AppKey("media_egress", EgressProxy)


REQUEUE_INTERVAL_S = 15.0


async def _requeue_unqueued(svc: MediaService) -> None:
    """Queue pending videos that never got a job (added by `video add`, or NATS was down at the time)."""
    rows = await svc.db.fetchall(
        "SELECT id FROM videos WHERE source_kind = 'download' AND availability = ? AND queued_at IS NULL",
        (Availability.PENDING.value,),
    )
    for row in rows:
        await svc.queue(int(row["id"]), "initial")


async def egress_ctx(app: web.Application) -> AsyncIterator[None]:
    """In the primary, the only process that runs yt-dlp: the egress proxy every download goes through."""
    if app[ROLE] is not ProcessRole.PRIMARY:
        yield
        return
    m = app[CONFIG].media
    proxy = EgressProxy(
        allowed_networks(app[CONFIG]),
        # shorter than yt-dlp's own socket timeout, so yt-dlp reads the proxy's 504 instead of timing out itself
        connect_timeout_s=min(10.0, m.socket_timeout_s / 2),
        # yt-dlp times out stalled reads itself; this only reaps connections it left behind (pooled tunnels)
        idle_timeout_s=max(60.0, 2.0 * m.socket_timeout_s),
        max_connections=16 * m.max_concurrent_downloads,
    )
    await proxy.start()
    app[EGRESS] = proxy
    yield
    await proxy.close()


async def media_ctx(app: web.Application) -> AsyncIterator[None]:
    """Build the media service; in the primary also run the download consumer and the orphan sweeper."""
    config = app[CONFIG]
    register_pool(POOL, 8)
    svc = MediaService(config, app[DB], app[BUS], app[CLOCK])
    try:
        await svc.start()
    except StorageError as exc:
        # the appliance still serves everything else; media calls fail until storage is back
        log.error("video storage is not available: %s", exc)
    except BaseException:
        await svc.close()
        raise
    app[MEDIA] = svc
    await svc.hub.attach(app[BUS])
    consumer = None
    own_tasks: list[asyncio.Task[None]] = []
    if app[ROLE] is ProcessRole.PRIMARY:
        from appliance.media.fetcher import Fetcher

        svc.ytdlp = dataclasses.replace(svc.ytdlp, proxy=app[EGRESS].url)
        await ensure_streams(app[BUS].js, [stream_spec(config.media.job_ack_wait_s)])
        consumer = JobConsumer(app[BUS], app[TASKS], Fetcher(svc).handle,
                               concurrency=config.media.max_concurrent_downloads,
                               ack_wait_s=config.media.job_ack_wait_s)
        app[CONSUMER] = consumer

        async def requeuer() -> None:
            while True:
                await _requeue_unqueued(svc)
                await asyncio.sleep(REQUEUE_INTERVAL_S)

        own_tasks.append(app[TASKS].spawn("media-requeue", requeuer))
        own_tasks.append(app[TASKS].spawn("media-consumer", consumer.run))

        async def sweeper() -> None:
            while True:
                await asyncio.sleep(config.media.sweep_interval_s)
                await sweep(svc, in_flight=consumer.in_flight if consumer else None)

        own_tasks.append(app[TASKS].spawn("media-sweeper", sweeper))
    yield
    await svc.hub.close()
    # this context cleans up before the core's task context: stop pulling jobs before storage closes
    for task in own_tasks:
        task.cancel()
    if own_tasks:
        await asyncio.wait(own_tasks, timeout=5)
    if consumer is not None:
        await consumer.stop()
    await svc.close()


def setup(app: web.Application) -> None:
    """Register the media feature on the application."""
    app.router.add_routes(api.routes)
    app.router.add_routes(stream.routes)
    pages.setup(app)
    # before media_ctx: the proxy listens before the first job is pulled and closes after the last yt-dlp died
    app.cleanup_ctx.append(egress_ctx)
    app.cleanup_ctx.append(media_ctx)
