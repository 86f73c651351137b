"""Run the real daemon (`python -m appliance serve`) as a subprocess for lifecycle tests and benchmarks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
STARTED: list[Daemon] = []
"""Every daemon started in this test process; tests/conftest.py stops leftovers after each test."""


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Daemon:
    """A running daemon: its process, URL, config file and captured output."""

    proc: subprocess.Popen[bytes]
    url: str
    config: Path
    data_dir: Path
    log_path: Path
    started_at: float
    ready_after_s: float = 0.0
    extra_env: dict[str, str] = field(default_factory=dict)
    content_url: str = ""  # the content origin (archive pages), when the config names its port

    @property
    def pid(self) -> int:
        """The primary's pid."""
        return self.proc.pid

    def tree(self) -> list[psutil.Process]:
        """Every process of the daemon: the primary and all its descendants."""
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def get(self, path: str, *, timeout: float = 5.0, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """A blocking GET; returns (status, body) also for error statuses."""
        req = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_ready(self, timeout: float = 30.0) -> float:
        """Poll /readyz until 200; returns seconds since start."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.output()}")
            try:
                status, _ = self.get("/readyz", timeout=1)
                if status == 200:
                    self.ready_after_s = time.monotonic() - self.started_at
                    return self.ready_after_s
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"daemon not ready within {timeout}s:\n{self.output()}")

    def output(self) -> str:
        """Everything the daemon printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code (kills on timeout)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                for proc in self.tree():
                    proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the primary only (children must follow on their own)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


LOCAL_NETWORKS = ["127.0.0.0/8"]  # the same test egress default as tests/conftest.py


def write_config(tmp_path: Path, extra_toml: str = "", *, port: int | None = None,
                 egress: list[str] | None = None) -> Path:
    """A config rooted in tmp_path; extra_toml is appended (use whole sections).

    The egress policy allows loopback (LOCAL_NETWORKS) unless `egress` gives another list or extra_toml
    has its own [egress] section.
    """
    port = port or _free_port()
    networks = LOCAL_NETWORKS if egress is None else egress
    # a caller that writes its own [egress] section keeps it (TOML allows a table only once)
    egress_toml = "" if "[egress]" in extra_toml else f"[egress]\nallowed_networks = {json.dumps(networks)}\n"
    config = tmp_path / "appliance.toml"
    config.write_text(
        f"""[http]
host = "127.0.0.1"
port = {port}
content_port = {_free_port()}
shutdown_timeout_s = 10.0

[paths]
data_dir = "{tmp_path / 'var'}"
content_root = "{tmp_path / 'content'}"

[logging]
level = "info"
format = "json"

[health]
min_free_disk_bytes = 1024

{egress_toml}
{extra_toml}
"""
    )
    return config


def start_daemon(tmp_path: Path, extra_toml: str = "", *, workers: int = 1, port: int | None = None,
                 env: dict[str, str] | None = None, wait: bool = True, config: Path | None = None) -> Daemon:
    """Start `python -m appliance serve` with a config in tmp_path and (by default) wait for /readyz."""
    config = config or write_config(tmp_path, extra_toml, port=port)
    text = config.read_text()
    port_line = next(line for line in text.splitlines() if line.startswith("port ="))
    bound = int(port_line.split("=")[1])
    log_path = tmp_path / f"daemon-{time.monotonic_ns()}.log"
    full_env = {**os.environ, **(env or {})}
    full_env.pop("NOTIFY_SOCKET", None) if "NOTIFY_SOCKET" not in (env or {}) else None
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "appliance", "serve", "--config", str(config), "--workers", str(workers)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(tmp_path), env=full_env,
        )
    daemon = Daemon(proc, f"http://127.0.0.1:{bound}", config, tmp_path / "var", log_path, time.monotonic())
    content_line = next((line for line in text.splitlines() if line.startswith("content_port =")), None)
    if content_line:
        daemon.content_url = f"http://127.0.0.1:{int(content_line.split('=')[1])}"
    STARTED.append(daemon)
    if wait:
        try:
            daemon.wait_ready()
        except BaseException:
            daemon.stop(timeout=10)
            raise
    return daemon


def stop_all() -> None:
    """Stop every daemon a test left running (a failed assertion must not leave processes behind)."""
    while STARTED:
        daemon = STARTED.pop()
        if daemon.proc.poll() is None:
            daemon.stop(timeout=15)


def log_records(daemon: Daemon) -> list[dict[str, object]]:
    """The daemon's JSON log lines, parsed (other lines skipped)."""
    out = []
    for line in daemon.output().splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out
