"""The real daemon: graceful SIGTERM, no orphaned children, systemd notifications, worker restarts, logs."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import psutil
import pytest

from tests.daemon import log_records, start_daemon

pytestmark = pytest.mark.slow


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = pids
    while time.monotonic() < deadline:
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        if not alive:
            return []
        time.sleep(0.1)
    return alive


def test_sigterm_lets_a_slow_in_flight_request_finish(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path, workers=1)
    port = int(daemon.url.rsplit(":", 1)[1])
    body = json.dumps({"username": "nobody", "password": "wrong password 1"}).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    sock.sendall(
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body[:10]
    )
    time.sleep(0.3)  # the request is now in flight, waiting for the rest of its body
    sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        sock.recv(1)  # no answer yet: the handler is still reading the body
    sock.setblocking(True)
    daemon.proc.send_signal(signal.SIGTERM)
    time.sleep(1.0)
    # New connections are refused while the in-flight one is still served.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    sock.sendall(body[10:])
    response = b""
    while chunk := sock.recv(65536):
        response += chunk
    sock.close()
    status_line = response.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 4"), response[:300]
    assert daemon.proc.wait(20) == 0


def test_no_child_survives_sigterm_or_sigkill(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path, workers=2)
    children = [p.pid for p in daemon.tree()[1:]]
    names = sorted(psutil.Process(p).name() for p in children)
    assert any(n.startswith("nats-server") for n in names) and len(children) >= 2, names
    assert daemon.stop() == 0
    assert _wait_gone(children, 10) == []

    daemon = start_daemon(tmp_path, workers=2)
    children = [p.pid for p in daemon.tree()[1:]]
    daemon.kill()  # SIGKILL: no cleanup code runs in the primary; the kernel must take the children down
    assert _wait_gone(children, 15) == []


def test_systemd_notifications(tmp_path: Path) -> None:
    sock_path = tmp_path / "notify.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(sock_path))
    server.settimeout(20)
    daemon = start_daemon(tmp_path, env={"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "1000000"})
    messages: list[str] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any("WATCHDOG=1" in m for m in messages):
        messages.append(server.recv(4096).decode())
    assert any(m.startswith("READY=1") for m in messages), messages
    assert any("WATCHDOG=1" in m for m in messages)
    daemon.stop()
    server.settimeout(0.5)
    try:
        while True:
            messages.append(server.recv(4096).decode())
    except TimeoutError:
        pass
    server.close()
    assert any("STOPPING=1" in m for m in messages), messages


def _cmd(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:  # exited (or a zombie) between listing and asking
        return ""


def test_dead_worker_is_restarted(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path, workers=2)
    workers = [p for p in daemon.tree()[1:] if "appliance.worker" in _cmd(p)]
    assert len(workers) == 1
    os.kill(workers[0].pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    replacement = []
    while time.monotonic() < deadline and not replacement:
        replacement = [p for p in daemon.tree()[1:] if "appliance.worker" in _cmd(p)
                       and p.pid != workers[0].pid]
        time.sleep(0.1)
    assert replacement, daemon.output()
    daemon.wait_ready()
    assert daemon.stop() == 0


def test_json_logs_carry_the_request_id(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path)
    status, _ = daemon.get("/api/v1/no-such-route", headers={"X-Request-ID": "trace-me-42"})
    assert status == 404
    daemon.stop()
    lines = [r for r in log_records(daemon) if r.get("request_id") == "trace-me-42"]
    assert lines and "/api/v1/no-such-route" in str(lines[0]["msg"])
