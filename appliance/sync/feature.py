"""Wires the sync feature into the application: routes, cleanup contexts, middlewares."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from appliance.core.process import ProcessRole
from appliance.keys import BUS, CLOCK, CONFIG, DB, HTTP_CLIENT, ROLE, TASKS
from appliance.sync import api_courses, api_providers, api_status, pages, streams
from appliance.sync.keys import ENGINE, VAULT

log = logging.getLogger(__name__)


async def engine_ctx(app: web.Application) -> AsyncIterator[None]:
    """Run the sync engine in the primary process only."""
    from appliance.sync.engine import SyncEngine

    settings = app[CONFIG].sync
    if app[ROLE] is not ProcessRole.PRIMARY or not settings.enabled:
        app[ENGINE] = None
        yield
        return
    engine = SyncEngine(app[DB], app[BUS], app[HTTP_CLIENT], app[CLOCK], app[TASKS], settings, app[VAULT])
    app[ENGINE] = engine
    await engine.start()
    yield
    await engine.stop()


def setup(app: web.Application) -> None:
    """Register the sync feature on the application."""
    streams.register(app[CONFIG].sync.stream_max_age_days)
    app.add_routes(api_providers.routes)
    app.add_routes(api_courses.routes)
    app.add_routes(api_status.routes)
    pages.setup(app)
    app.cleanup_ctx.append(engine_ctx)
