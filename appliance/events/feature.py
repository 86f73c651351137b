"""Wires the events feature into the application: the webhook API, the relay, fan-out and deliveries."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from appliance.core.process import ProcessRole
from appliance.events import api, pages, streams
from appliance.events.keys import DISPATCHER, SECRETS
from appliance.events.store import PURPOSE
from appliance.keys import BUS, CLOCK, CONFIG, DB, HTTP_CLIENT, ROLE, TASKS, VAULT

log = logging.getLogger(__name__)


async def secrets_ctx(app: web.Application) -> AsyncIterator[None]:
    """The core vault bound to webhook secrets, in every process (the API seals, the primary opens)."""
    app[SECRETS] = app[VAULT].for_purpose(PURPOSE)
    yield


async def delivery_ctx(app: web.Application) -> AsyncIterator[None]:
    """In the primary: relay events to JetStream, fan them out to webhooks, deliver, keep house."""
    from appliance.events.dispatcher import Dispatcher
    from appliance.events.relay import EventRelay, Fanout, prune_forever

    config = app[CONFIG]
    if app[ROLE] is not ProcessRole.PRIMARY or not config.events.enabled:
        app[DISPATCHER] = None
        yield
        return
    db, clock, tasks = app[DB], app[CLOCK], app[TASKS]
    relay = EventRelay(db, app[BUS], clock, config.events)
    fanout = Fanout(db, clock, config.webhooks, interval_s=config.events.relay_interval_s)
    dispatcher = Dispatcher(db, app[HTTP_CLIENT], clock, config.webhooks, app[SECRETS], tasks)
    app[DISPATCHER] = dispatcher

    async def wake_dispatcher() -> None:
        # The fan-out queued deliveries: pick them now instead of at the dispatcher's next look.
        while True:
            await fanout.delivered.wait()
            fanout.delivered.clear()
            dispatcher.wake.set()

    tasks.spawn("events-relay", relay.run)
    tasks.spawn("webhooks-fanout", fanout.run)
    tasks.spawn("webhooks-wake", wake_dispatcher)
    tasks.spawn("events-prune", lambda: prune_forever(db, clock, config.events, config.webhooks))
    dispatcher.start()
    yield
    with contextlib.suppress(asyncio.CancelledError):
        await dispatcher.stop()


def setup(app: web.Application) -> None:
    """Register the events feature on the application."""
    streams.register(app[CONFIG].events)
    app.add_routes(api.routes)
    pages.setup(app)
    app.cleanup_ctx.append(secrets_ctx)
    app.cleanup_ctx.append(delivery_ctx)
