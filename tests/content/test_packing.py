"""The real daemon with two HTTP processes: the primary keeps the content origin's connections while it has
headroom and hands idle ones to the worker when busy, over a socket pair, without the clients noticing."""

import http.client
import re
import shutil
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.content.test_daemon import content_pass, login, wait_for
from tests.daemon import Daemon, start_daemon


def _moved(d: Daemon) -> float:
    status, body = d.get("/metrics")
    assert status == 200
    found = re.search(rb"^appliance_content_connections_moved_total ([0-9.e+]+)$", body, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _read(conns: list[http.client.HTTPConnection], cookie: str, seconds: float) -> list[int]:
    """Every connection reads the same article in its own thread for `seconds`; each thread's count of reads."""
    counts = [0] * len(conns)
    failures: list[str] = []
    deadline = time.monotonic() + seconds

    def reader(i: int) -> None:
        try:
            while time.monotonic() < deadline:
                conns[i].request("GET", "/content/testbook/a/algebra", headers={"Cookie": cookie})
                resp = conns[i].getresponse()
                body = resp.read()
                if resp.status != 200 or b"Algebra" not in body:
                    failures.append(f"{resp.status} {body[:80]!r}")
                    return
                counts[i] += 1
        except Exception as exc:  # noqa: BLE001 - reported below as the test's failure
            failures.append(repr(exc))

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(len(conns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
    return counts


def _reading(tmp_path: Path, zim_dir: Path, fraction: float) -> tuple[Daemon, str, list[http.client.HTTPConnection]]:
    """A daemon with 2 HTTP processes serving testbook with this busy fraction, a content pass, 8 connections."""
    zims = tmp_path / "content" / "zim"
    zims.mkdir(parents=True)
    shutil.copy(zim_dir / "testbook.zim", zims / "testbook.zim")
    d = start_daemon(tmp_path, f"[content]\nrefresh_interval_s = 0.2\npack_busy_fraction = {fraction}\n", workers=2)
    try:
        cookie = login(d)
        wait_for(d, cookie, {"testbook": "ready"})
        passed = content_pass(d, cookie)
    except BaseException:
        d.stop()
        raise
    where = urlsplit(d.content_url)
    return d, passed, [http.client.HTTPConnection(where.hostname or "", where.port, timeout=10) for _ in range(8)]


@pytest.mark.slow
def test_busy_primary_hands_connections_to_the_worker(tmp_path: Path, zim_dir: Path) -> None:
    # A low busy fraction so that a few test threads make the primary "busy" on any machine.
    d, passed, conns = _reading(tmp_path, zim_dir, 0.05)
    try:
        assert _moved(d) == 0
        counts = _read(conns, passed, 3.0)
        assert all(counts), counts
        moved = _moved(d)
        assert moved >= 1, "no connection was handed to the worker while the primary was busy"
        # Every connection, moved or not, goes on answering on the same socket.
        socks = [c.sock for c in conns]
        assert all(_read(conns, passed, 0.5))
        assert [c.sock for c in conns] == socks, "a client had to reconnect"
        for c in conns:
            c.close()
    finally:
        assert d.stop() == 0


@pytest.mark.slow
def test_off_switch_spreads_connections_by_the_kernel_again(tmp_path: Path, zim_dir: Path) -> None:
    """pack_busy_fraction = 1: both processes listen on the content port (SO_REUSEPORT), nothing is moved."""
    d, passed, conns = _reading(tmp_path, zim_dir, 1.0)
    try:
        assert all(_read(conns, passed, 1.0))
        assert _moved(d) == 0
        for c in conns:
            c.close()
    finally:
        assert d.stop() == 0
