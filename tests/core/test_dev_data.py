"""`--dev` sub-commands act on the data `serve --dev` uses when run from the same folder."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.slow


def test_user_add_dev_and_serve_dev_share_the_database(tmp_path: Path) -> None:
    env = {**os.environ, "APPLIANCE_HEALTH__MIN_FREE_DISK_BYTES": "1024"}
    added = subprocess.run(
        [sys.executable, "-m", "appliance", "user", "add", "--dev", "--username", "ada", "--role", "learner",
         "--password-stdin"],
        input="a long secret 42\n", capture_output=True, text=True, cwd=tmp_path, timeout=60, env=env,
    )
    assert added.returncode == 0, added.stderr
    assert (tmp_path / "var" / "appliance.db").exists()

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance", "serve", "--dev", "--workers", "1", "--port", str(port)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        banner = ""
        deadline = time.monotonic() + 90  # a loaded machine starts slowly
        while "Password:" not in banner and time.monotonic() < deadline:
            banner += proc.stdout.readline()
        assert f"appliance listening on http://127.0.0.1:{port}" in banner
        assert "Username: admin" in banner  # the dev admin is created once, with its one-time password
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/auth/login", method="POST",
            data=json.dumps({"username": "ada", "password": "a long secret 42"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert json.loads(resp.read())["data"]["user"]["username"] == "ada"
        assert (tmp_path / "content-cache" / "zim").is_dir()
    finally:
        proc.terminate()
        proc.wait(30)
    # A second start prints no password: the admin exists already.
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance", "serve", "--dev", "--workers", "1", "--port", str(port)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        while "listening" not in first:
            first = proc.stdout.readline()
            assert first, "daemon exited"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "Password:" not in out
    assert proc.returncode == 0
    conn = sqlite3.connect(tmp_path / "var" / "appliance.db")
    audited = conn.execute(
        "SELECT actor_username, target_username FROM audit_log WHERE action = 'user_created' ORDER BY id").fetchall()
    conn.close()
    assert ("serve --dev", "admin") in audited  # the dev admin is audited like any other account
