"""A daemon that cannot start exits promptly, non-zero, with one clear log line (never hangs half-started)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

NOBODY = 65534


def _config(tmp_path: Path) -> Path:
    data, content = tmp_path / "data", tmp_path / "content"
    data.mkdir()
    content.mkdir()
    config = tmp_path / "appliance.toml"
    config.write_text(f'[http]\nhost = "127.0.0.1"\nport = 0\n[paths]\ndata_dir = "{data}"\n'
                      f'content_root = "{content}"\n[logging]\nformat = "json"\n')
    return config


def _serve(config: Path, *, as_nobody: bool) -> tuple[subprocess.CompletedProcess[str], float]:
    cmd = [sys.executable, "-m", "appliance", "serve", "--config", str(config), "--workers", "2"]
    if as_nobody:
        cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *cmd]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_SOCKET", "PYTEST"))}
    started = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, cwd=config.parent)
    return out, time.monotonic() - started


def _leftovers(marker: str) -> list[str]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if marker in cmdline:
            found.append(cmdline)
    return found


def _failure_lines(out: subprocess.CompletedProcess[str]) -> list[str]:
    return [ln for ln in (out.stdout + out.stderr).splitlines() if "start-up failed" in ln]


def test_a_database_the_daemon_cannot_write_fails_fast_with_one_line(tmp_path: Path) -> None:
    """The first-boot bug: a root-owned database is read-only to the service user."""
    config = _config(tmp_path)
    db = tmp_path / "data" / "appliance.db"
    migrated = subprocess.run([sys.executable, "-m", "appliance", "migrate", "--config", str(config)],
                              capture_output=True, text=True, timeout=60)
    assert migrated.returncode == 0, migrated.stderr
    as_nobody = os.geteuid() == 0
    if as_nobody:  # root writes anything; run as an unprivileged user as systemd would
        for path in (tmp_path, tmp_path / "data", tmp_path / "content"):
            shutil.chown(path, NOBODY, NOBODY)
        for leftover in (tmp_path / "data").glob("appliance.db-*"):
            leftover.unlink()
        db.chmod(0o644)  # root's file, as `appliance user add` run as root made it
    else:
        db.chmod(0o444)
    out, elapsed = _serve(config, as_nobody=as_nobody)
    assert out.returncode == 1, out.stdout + out.stderr
    assert elapsed < 20, f"took {elapsed:.1f}s to give up"
    lines = _failure_lines(out)
    assert len(lines) == 1, out.stdout + out.stderr
    assert "readonly database" in lines[0]
    assert "Traceback" not in out.stdout + out.stderr
    assert not _leftovers(str(tmp_path / "data")), "a child process outlived the failed start-up"


def test_a_corrupt_database_fails_fast_with_one_line(tmp_path: Path) -> None:
    config = _config(tmp_path)
    (tmp_path / "data" / "appliance.db").write_bytes(b"not a database at all " * 512)
    out, elapsed = _serve(config, as_nobody=False)
    assert out.returncode == 1
    assert elapsed < 20
    lines = _failure_lines(out)
    assert len(lines) == 1 and "file is not a database" in lines[0], out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr


def test_an_unwritable_data_folder_fails_fast_with_one_line(tmp_path: Path) -> None:
    config = _config(tmp_path)
    (tmp_path / "data").chmod(0o500)
    as_nobody = os.geteuid() == 0
    if as_nobody:
        shutil.chown(tmp_path, NOBODY, NOBODY)
        shutil.chown(tmp_path / "content", NOBODY, NOBODY)
    out, elapsed = _serve(config, as_nobody=as_nobody)
    assert out.returncode == 1
    assert elapsed < 20
    lines = _failure_lines(out)
    assert len(lines) == 1 and "Permission denied" in lines[0], out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr


@pytest.fixture(autouse=True)
def _readable_tree(tmp_path: Path) -> None:
    # setpriv'd runs need to reach tmp_path through its parents.
    for parent in (tmp_path.parent, tmp_path.parent.parent):
        parent.chmod(parent.stat().st_mode | 0o005)
