"""Liveness (/healthz), readiness (/readyz), metrics (/metrics) and system state (/api/v1/system)."""

from __future__ import annotations

import hmac
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from aiohttp import web

from appliance.core.blocking import run_blocking
from appliance.core.errors import ApiError
from appliance.keys import BUS, CONFIG, DB, NATS_SERVER
from appliance.observability.httpmetrics import BUFFER
from appliance.observability.metrics import DB_UP, render
from appliance.web.openapi import BOOL, INT, NUM, STR, arr, nullable, obj, spec
from appliance.web.policy import Role, public, roles
from appliance.web.responses import ok

STARTED = time.time()


@public
async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers. Cheap by design: no database or network."""
    return web.json_response({"data": {"status": "alive"}, "meta": {}})


def _writable(path: Path) -> bool:
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".readyz-"):
            return True
    except OSError:
        return False


def _free(path: Path) -> int:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return -1


@public
async def readyz(request: web.Request) -> web.Response:
    """Readiness: database, NATS, free disk and a writable content root; 503 names each failing check."""
    config = request.app[CONFIG]
    db_ok = await request.app[DB].ping()
    DB_UP.set(1 if db_ok else 0)
    bus_ok = await request.app[BUS].ping()
    minimum = config.health.min_free_disk_bytes
    data_free = await run_blocking("io", _free, config.paths.data_dir)
    content_free = await run_blocking("io", _free, config.paths.content_root)
    writable = await run_blocking("io", _writable, config.paths.content_root)
    checks = {
        "database": {"ok": db_ok},
        "nats": {"ok": bus_ok},
        "disk_data": {"ok": data_free >= minimum, "free_bytes": data_free, "min_bytes": minimum},
        "disk_content": {"ok": content_free >= minimum, "free_bytes": content_free, "min_bytes": minimum},
        "content_root_writable": {"ok": writable},
    }
    failing = [name for name, check in checks.items() if not check["ok"]]
    if failing:
        raise ApiError(503, "not_ready", "not ready: " + ", ".join(failing),
                       {"failing": failing, "checks": checks}, headers={"Retry-After": "1"})
    return ok({"status": "ready", "checks": checks})


@public
async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition for every process of the daemon (optionally behind a bearer token)."""
    config = request.app[CONFIG]
    token = config.health.metrics_token
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise ApiError(401, "unauthorized", "metrics need the configured bearer token",
                           headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    paths = {"data": config.paths.data_dir, "content": config.paths.content_root}
    BUFFER.flush()
    body = await run_blocking("io", render, paths)
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


async def system_snapshot(app: web.Application) -> dict[str, Any]:
    """CPU, memory, disks, load, uptime and NATS state (the API and the staff dashboard show the same)."""
    config = app[CONFIG]
    server = app[NATS_SERVER]

    def collect() -> dict[str, Any]:
        vm = psutil.virtual_memory()
        disks = {}
        for name, path in (("data", config.paths.data_dir), ("content", config.paths.content_root)):
            try:
                usage = shutil.disk_usage(path)
                disks[name] = {"path": str(path), "total_bytes": usage.total, "free_bytes": usage.free}
            except OSError as exc:
                disks[name] = {"path": str(path), "error": exc.strerror}
        return {
            "hostname": platform.node(),
            "python": sys.version.split()[0],
            "cpu_count": os.cpu_count(),
            "cpu_percent": psutil.cpu_percent(interval=None),
            "load_average": list(os.getloadavg()),
            "memory": {"total_bytes": vm.total, "available_bytes": vm.available},
            "disks": disks,
            "boot_time": psutil.boot_time(),
            "daemon_uptime_s": round(time.time() - STARTED, 1),
        }

    state = await run_blocking("io", collect)
    state["nats"] = {
        "connected": app[BUS].connected,
        "embedded": server is not None,
        "server_state": server.state.value if server else None,
        "server_restarts": server.restarts if server else None,
    }
    return state


@roles(Role.FACILITY_ADMIN, Role.DEPARTMENT_ADMIN)
@spec(response=obj("hostname", "cpu_count", "memory", "disks", "nats", hostname=STR, python=STR,
                   cpu_count=nullable(INT), cpu_percent=NUM, load_average=arr(NUM),
                   memory=obj("total_bytes", "available_bytes", total_bytes=INT, available_bytes=INT),
                   disks={"type": "object", "additionalProperties": obj("path", path=STR)}, boot_time=NUM,
                   daemon_uptime_s=NUM, nats=obj("connected", "embedded", connected=BOOL, embedded=BOOL,
                                                 server_state=nullable(STR), server_restarts=nullable(INT))))
async def system_state(request: web.Request) -> web.Response:
    """CPU, memory, disks, load, uptime and component states, for staff and technicians."""
    return ok(await system_snapshot(request.app))


def setup(app: web.Application) -> None:
    """Register the observability routes."""
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/system", system_state)
