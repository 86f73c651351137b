"""install.sh refuses clearly before changing anything (the rest is tested on a real system in test_device.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.provisioning.machine import REPO

SCRIPT = str(REPO / "install.sh")


def sh(*args: str, user: int | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [SCRIPT, *args]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd="/")


def test_device_paths_need_root() -> None:
    for flag in ("--device", "--uninstall", "--purge"):
        out = sh(flag, user=65534)
        assert out.returncode == 1 and "must run as root" in out.stderr, (flag, out.stderr)


def test_bad_options_are_named() -> None:
    out = sh("--device", "--frobnicate")
    assert out.returncode == 1 and "unknown option --frobnicate" in out.stderr
    out = sh("--device", "--port")
    assert out.returncode == 1 and "--port needs a value" in out.stderr
    out = sh()
    assert out.returncode == 2 and "--dev, --device" in out.stderr


def test_armv7_is_refused_by_name(tmp_path: Path) -> None:
    out = sh("--build-wheelhouse", str(tmp_path / "wh"), "--arch", "armv7l")
    assert out.returncode == 1 and "armv7 is not supported" in out.stderr
    assert not (tmp_path / "wh").exists(), "refused, yet it created the wheelhouse folder"


def test_help_lists_every_flag_scripts_rely_on() -> None:
    out = sh("--help")
    assert out.returncode == 0
    for flag in ("--dev", "--device", "--wheelhouse", "--build-wheelhouse", "--uninstall", "--purge", "--check",
                 "--start", "--content", "--yes"):
        assert flag in out.stdout, flag
