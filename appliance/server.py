"""Running the daemon: the primary process (HTTP + supervisors) and its HTTP worker processes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import sys
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from appliance.app import BUS_URL, create_app
from appliance.config import Config
from appliance.core.children import die_with_parent
from appliance.core.gcsettle import settle_gc
from appliance.core.process import ProcessRole
from appliance.core.sdnotify import notify, watchdog_interval
from appliance.keys import EXTRA_SITES, NATS_SERVER, RELOAD_HOOKS, STARTUP_NOTICES
from appliance.observability.metrics import WORKER_RESTARTS, mark_dead
from appliance.web.handoff import Adopter, Handoff, channel
from appliance.web.sites import Front, FrontedRunner

log = logging.getLogger(__name__)

STARTUP_FAILED = 1
"""Exit status of a daemon that could not start (systemd's Restart=on-failure retries it)."""
STARTUP_CLEANUP_S = 15.0
"""Bound on undoing a failed start-up, so a stuck clean-up cannot turn a failure into a hang."""


@dataclass
class ServeOptions:
    """What `appliance serve` was asked for, beyond the config file."""

    host: str
    port: int
    workers: int
    argv: list[str] = field(default_factory=list)  # --config/--dev, passed on to workers


async def _start_site(app: web.Application, config: Config, host: str, port: int,
                      front: Front | None = None, adopt_fd: int | None = None,
                      adopters: list[Adopter] | None = None) -> tuple[web.AppRunner, int]:
    """Run app on host:port, or (adopt_fd given: a worker's side of a packed site) on the connections the
    primary hands over that channel instead of a listening socket of its own."""
    options: dict[str, Any] = {"access_log": None, "shutdown_timeout": config.http.shutdown_timeout_s,
                               "handle_signals": False}
    runner = FrontedRunner(app, front, **options) if front is not None else web.AppRunner(app, **options)
    await runner.setup()
    if adopt_fd is not None:
        adopter = _adopt_on(runner, adopt_fd)
        if adopters is not None:
            adopters.append(adopter)
        return runner, port
    site = web.TCPSite(runner, host, port, reuse_port=True, shutdown_timeout=config.http.shutdown_timeout_s)
    await site.start()
    server = site._server  # noqa: SLF001 - the only way to learn the port chosen for port 0
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, bound


def _adopt_on(runner: web.AppRunner, fd: int) -> Adopter:
    """Serve the connections handed over channel fd with the runner's protocol (a worker's packed site)."""
    loop = asyncio.get_running_loop()
    adopting: set[asyncio.Task[Any]] = set()
    factory: Any = runner.server  # the front's protocol factory (FrontedRunner), as a listening socket gets

    def adopt(sock: Any) -> None:
        task = loop.create_task(loop.connect_accepted_socket(factory, sock))
        adopting.add(task)
        task.add_done_callback(adopting.discard)

    adopter = Adopter(fd, adopt)
    adopter.start(loop)
    return adopter


async def start_extra_sites(app: web.Application, config: Config, host: str, main_port: int,
                            ports: dict[str, int] | None = None,
                            handoffs: dict[str, int] | None = None,
                            adopters: list[Adopter] | None = None) -> list[tuple[web.AppRunner, web.Application]]:
    """Bind every extra site a feature registered (after the main app started, so they share its state).

    The primary picks each port (ports None) and records it on the site; workers bind the ports the
    primary chose, so every process answers on the same ones. A packed site is bound by the primary only;
    a worker serves the connections handed to it (handoffs: site name -> channel descriptor).
    """
    started: list[tuple[web.AppRunner, web.Application]] = []
    for site in app[EXTRA_SITES]:
        wanted = site.port_for(main_port) if ports is None else ports[site.name]
        adopt_fd = None
        if site.packed and ports is not None:
            adopt_fd = (handoffs or {}).get(site.name)
            if adopt_fd is None:
                continue  # no channel: this worker does not serve that site
        runner, bound = await _start_site(site.app, config, host, wanted, site.front, adopt_fd, adopters)
        site.bound_port = bound
        started.append((runner, site.app))
    return started


def packed_sites(app: web.Application) -> dict[str, Handoff]:
    """A hand-off for each packed site, given to its front (the primary's side)."""
    handoffs: dict[str, Handoff] = {}
    for site in app[EXTRA_SITES]:
        if site.packed and site.front is not None:
            handoffs[site.name] = Handoff()
            site.front.pack(handoffs[site.name])
    return handoffs


def site_ports(app: web.Application) -> dict[str, int]:
    """name -> bound port of the extra sites, for handing over to workers."""
    return {site.name: site.bound_port or 0 for site in app[EXTRA_SITES]}


async def drain_all(main: tuple[web.AppRunner, web.Application],
                    extras: list[tuple[web.AppRunner, web.Application]], timeout: float) -> None:
    """Drain the extra sites and the main one together; the main app (which they share) is torn down last."""
    for runner, _app in [*extras, main]:
        for site in list(runner.sites):
            await site.stop()
    await asyncio.gather(*(drain(runner, extra, timeout) for runner, extra in extras))
    await drain(main[0], main[1], timeout)


async def drain(runner: web.AppRunner, app: web.Application, timeout: float) -> None:
    """Stop accepting, let in-flight requests finish (bounded), then tear the app down in order."""
    from appliance.web.middlewares import INFLIGHT

    for site in list(runner.sites):
        await site.stop()
    if not await app[INFLIGHT].wait_idle(timeout):
        log.warning("%d request(s) still running after %.0fs; cancelling them", app[INFLIGHT].count, timeout)
    await runner.cleanup()


class WorkerPool:
    """Keeps N-1 HTTP worker processes alive beside the primary; restarts the ones that die."""

    def __init__(self, count: int, argv: list[str], host: str, port: int, bus_url: str,
                 sites: dict[str, int] | None = None, handoffs: dict[str, Handoff] | None = None) -> None:
        self.count = count
        self._sites = sites or {}
        self._handoffs = handoffs or {}
        self._argv = argv
        self._host = host
        self._port = port
        self._bus_url = bus_url
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def pids(self) -> list[int]:
        """Live worker pids."""
        return [p.pid for p in self._procs.values() if p.returncode is None]

    async def _spawn(self, index: int) -> asyncio.subprocess.Process:
        env = dict(os.environ, APPLIANCE_PROCESS_ROLE="worker")
        cmd = [sys.executable, "-m", "appliance.worker", *self._argv,
               "--host", self._host, "--port", str(self._port), "--bus-url", self._bus_url,
               "--index", str(index)]
        for name, site_port in self._sites.items():
            cmd += ["--site", f"{name}={site_port}"]
        ends = {name: channel() for name in self._handoffs}
        for name, (_mine, theirs) in ends.items():
            cmd += ["--handoff", f"{name}={theirs.fileno()}"]
        try:
            proc = await asyncio.create_subprocess_exec(*cmd, env=env, stdin=asyncio.subprocess.DEVNULL,
                                                        preexec_fn=die_with_parent,
                                                        pass_fds=[theirs.fileno() for _m, theirs in ends.values()])
        except BaseException:
            for mine, theirs in ends.values():
                mine.close()
                theirs.close()
            raise
        for name, (mine, theirs) in ends.items():
            theirs.close()  # the worker holds it now
            self._handoffs[name].attach(index, mine)
        self._procs[index] = proc
        return proc

    async def start(self) -> None:
        """Spawn every worker and a watcher for each."""
        for index in range(1, self.count):
            await self._spawn(index)
            self._tasks.append(asyncio.get_running_loop().create_task(self._watch(index), name=f"worker-{index}"))

    async def _watch(self, index: int) -> None:
        delay = 0.5
        while True:
            proc = self._procs[index]
            code = await proc.wait()
            mark_dead(proc.pid)
            for handoff in self._handoffs.values():
                handoff.detach(index)
            if self._stopping:
                return
            log.warning("HTTP worker %d (pid %d) exited with %s; restarting", index, proc.pid, code)
            WORKER_RESTARTS.inc()
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 30.0)
            try:
                await self._spawn(index)
            except OSError:
                log.exception("could not restart HTTP worker %d", index)

    def signal_all(self, sig: int) -> None:
        """Forward a signal (SIGHUP) to every worker."""
        for proc in self._procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)

    async def stop(self, timeout: float) -> None:
        """SIGTERM every worker, wait for their graceful shutdown, SIGKILL stragglers."""
        self._stopping = True
        for handoff in self._handoffs.values():
            handoff.close()  # no more connections to workers that are about to drain
        self.signal_all(signal.SIGTERM)
        procs = [p for p in self._procs.values() if p.returncode is None]
        if procs:
            _done, pending = await asyncio.wait([asyncio.ensure_future(p.wait()) for p in procs], timeout=timeout)
            if pending:
                for proc in procs:
                    if proc.returncode is None:
                        proc.kill()
                await asyncio.gather(*(p.wait() for p in procs), return_exceptions=True)
        for proc in self._procs.values():
            mark_dead(proc.pid)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _wait_for_stop(extra: dict[int, object] | None = None) -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _watchdog(interval: float) -> None:
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)


def describe_failure(exc: BaseException) -> str:
    """One line naming what went wrong, for the start-up failure log line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _abort_startup(app: web.Application, exc: BaseException, workers: WorkerPool | None = None) -> int:
    """Log one line, undo whatever had started (bounded), and return the exit status."""
    # One clear line for the journal; the traceback only at debug level, so `journalctl -u appliance`
    # shows the cause at a glance instead of fifty lines of frames.
    log.error("start-up failed: %s", describe_failure(exc))
    log.debug("start-up failure traceback", exc_info=exc)
    notify(f"STATUS=start-up failed: {describe_failure(exc)}")
    try:
        if workers is not None:
            await asyncio.wait_for(workers.stop(5), STARTUP_CLEANUP_S)
        # Only the cleanup contexts that were entered are exited (aiohttp keeps that list).
        await asyncio.wait_for(app.cleanup(), STARTUP_CLEANUP_S)
    except Exception as cleanup_exc:  # noqa: BLE001 - already failing; the first cause is what matters
        log.warning("clean-up after the failed start-up was incomplete: %s", describe_failure(cleanup_exc))
    return STARTUP_FAILED


async def run_primary(config: Config, options: ServeOptions) -> int:
    """Start everything, serve until SIGTERM/SIGINT, then shut down in order and return 0.

    Any start-up failure returns STARTUP_FAILED promptly after one log line (never hangs half-started).
    """
    try:
        app = create_app(config, ProcessRole.PRIMARY)
    except Exception as exc:
        log.error("start-up failed: %s", describe_failure(exc))
        log.debug("start-up failure traceback", exc_info=exc)
        return STARTUP_FAILED
    stop = await _wait_for_stop()
    loop = asyncio.get_running_loop()
    workers: WorkerPool | None = None
    try:
        runner, port = await _start_site(app, config, options.host, options.port)
        extras = await start_extra_sites(app, config, options.host, port)
        workers = WorkerPool(options.workers, options.argv, options.host, port, app.get(BUS_URL, config.bus.url),
                             site_ports(app), packed_sites(app) if options.workers > 1 else None)
        await workers.start()
    except Exception as exc:
        return await _abort_startup(app, exc, workers)

    async def reload() -> None:
        log.info("SIGHUP: reloading")
        workers.signal_all(signal.SIGHUP)
        for hook in app[RELOAD_HOOKS]:
            try:
                await hook()
            except Exception:
                log.exception("reload hook failed")

    reload_tasks: set[asyncio.Task[None]] = set()

    def on_hup() -> None:
        task = loop.create_task(reload(), name="reload")
        reload_tasks.add(task)
        task.add_done_callback(reload_tasks.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    url = f"http://{options.host}:{port}"
    log.info("appliance serving on %s with %d HTTP process(es)", url, options.workers)
    print(f"appliance listening on {url}", flush=True)
    for name, site_port in site_ports(app).items():
        log.info("%s site serving on http://%s:%d", name, options.host, site_port)
        print(f"appliance {name} site listening on http://{options.host}:{site_port}", flush=True)
    for notice in app[STARTUP_NOTICES]:
        notice(url)
    settle_gc()
    notify(f"READY=1\nSTATUS=serving on {url}\nMAINPID={os.getpid()}")
    interval = watchdog_interval() if config.health.watchdog else None
    dog = loop.create_task(_watchdog(interval), name="watchdog") if interval else None

    await stop.wait()
    log.info("shutting down")
    notify("STOPPING=1")
    nats_server = app.get(NATS_SERVER)
    if nats_server is not None:
        nats_server.stopping()
    if dog:
        dog.cancel()
    # Workers and the primary's own site stop accepting and drain in-flight requests in parallel.
    await asyncio.gather(workers.stop(config.http.shutdown_timeout_s + 5),
                         drain_all((runner, app), extras, config.http.shutdown_timeout_s))
    log.info("stopped")
    return 0


def exit_now(code: int) -> None:
    """Leave after a failed start-up without waiting for threads a half-started library may have left.

    Python waits for every non-daemon thread at exit; one stuck in a library (a database connection
    thread, an executor) would turn a clear failure into a hang that systemd only ends after
    TimeoutStartSec. Logs are flushed first.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


async def run_worker(config: Config, host: str, port: int, bus_url: str,
                     sites: dict[str, int] | None = None, handoffs: dict[str, int] | None = None) -> int:
    """An HTTP-only process: same app without supervisors or background work."""
    app = create_app(config, ProcessRole.WORKER, bus_url=bus_url)
    adopters: list[Adopter] = []
    stop = await _wait_for_stop()
    loop = asyncio.get_running_loop()

    async def reload() -> None:
        for hook in app[RELOAD_HOOKS]:
            with contextlib.suppress(Exception):
                await hook()

    reload_tasks: set[asyncio.Task[None]] = set()

    def on_hup() -> None:
        task = loop.create_task(reload(), name="reload")
        reload_tasks.add(task)
        task.add_done_callback(reload_tasks.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    try:
        runner, _ = await _start_site(app, config, host, port)
        extras = await start_extra_sites(app, config, host, port, sites or {}, handoffs, adopters)
    except Exception as exc:
        return await _abort_startup(app, exc)
    settle_gc()
    await stop.wait()
    for adopter in adopters:
        adopter.stop()
    await drain_all((runner, app), extras, config.http.shutdown_timeout_s)
    return 0
