"""The device path for real: `install.sh --device --wheelhouse` in a minbase Debian 12 with no network, then
that system booted with systemd-nspawn: the service, first boot, reload, stop, re-run, upgrade, rollback,
uninstall and purge.

The tests of this module run in order on one system (each step is what a technician does next).
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.provisioning.machine import (
    Container,
    base_rootfs_tarball,
    chroot_offline,
    copy_tree,
    free_port,
    http_get,
    log,
    unpack,
    wait_http,
    wheelhouse,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

SRC = "/root/appliance-src"
WHEELHOUSE = "/root/wheelhouse"
SNAPSHOT_DIRS = ("opt/appliance", "etc/appliance", "etc/systemd/system", "var/lib/appliance")


class Device:
    """One Debian 12 root file system, installed offline, and (once booted) its container."""

    def __init__(self, root: Path, port: int, install_output: str, install_s: float) -> None:
        self.root = root
        self.port = port
        self.install_output = install_output
        self.install_s = install_s
        self.container: Container | None = None

    @property
    def url(self) -> str:
        """The appliance as the LAN sees it (the container shares this machine's network)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def box(self) -> Container:
        """The booted container."""
        assert self.container is not None, "the device is not booted"
        return self.container

    def install(self, *flags: str, tree: str = SRC, check: bool = True) -> str:
        """install.sh inside the booted system (its own systemd), from the wheelhouse."""
        out = self.box.sh(f"cd {tree} && ./install.sh --device --wheelhouse {WHEELHOUSE} {' '.join(flags)} 2>&1",
                          timeout=900, check=check)
        return out.stdout

    def sql(self, query: str) -> list[tuple[object, ...]]:
        """Read the device's database from the host (read-only)."""
        conn = sqlite3.connect(f"file:{self.root}/var/lib/appliance/appliance.db?mode=ro", uri=True)
        try:
            return conn.execute(query).fetchall()
        finally:
            conn.close()


def snapshot(root: Path) -> dict[str, tuple[int, int, int, int, float]]:
    """Mode, owner, group, size and mtime of everything install.sh manages."""
    found = {}
    for top in SNAPSHOT_DIRS:
        base = root / top
        for path in [base, *base.rglob("*")]:
            if "__pycache__" in path.parts or path.is_relative_to(root / "var/lib/appliance/nats"):
                continue
            st = path.lstat()
            found[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime)
    return found


@pytest.fixture(scope="module")
def device(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Device]:
    """A minbase Debian 12 (cached tarball) where install.sh --device --wheelhouse ran with no network."""
    started = time.monotonic()
    tarball = base_rootfs_tarball()
    house = wheelhouse()
    log(f"rootfs and wheelhouse ready after {time.monotonic() - started:.0f}s")
    root = tmp_path_factory.mktemp("device") / "root"
    unpack(tarball, root)
    copy_tree(root / SRC.lstrip("/"))
    shutil.copytree(house, root / WHEELHOUSE.lstrip("/"), symlinks=True)
    (root / "etc/hostname").write_text("appliance\n")  # as image/build.sh leaves it; first boot renames it
    port = free_port()
    started = time.monotonic()
    # --check first: it must say what it would do and change nothing.
    checked = chroot_offline(root, "bash", "-c", f"cd {SRC} && ./install.sh --check --wheelhouse {WHEELHOUSE} 2>&1"
                             " && ! id appliance && test ! -e /opt/appliance && test ! -e /etc/appliance")
    assert "would: install Debian packages from" in checked.stdout, checked.stdout
    out = chroot_offline(root, "bash", "-c",
                         f"cd {SRC} && ./install.sh --device --wheelhouse {WHEELHOUSE} --port {port} --firstboot 2>&1",
                         timeout=1200)
    install_s = time.monotonic() - started
    log(f"offline install in the chroot took {install_s:.0f}s")
    dev = Device(root, port, out.stdout + out.stderr, install_s)
    try:
        yield dev
    finally:
        if dev.container is not None:
            dev.container.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_offline_install_in_a_minbase_chroot_with_no_network(device: Device) -> None:
    root = device.root
    assert "network interfaces: lo" in device.install_output  # nothing but loopback: truly offline
    assert "installing Debian packages from the wheelhouse" in device.install_output
    for binary in ("usr/bin/ffmpeg", "usr/bin/python3", "usr/bin/sqlite3", "usr/bin/xmlsec1", "bin/kill"):
        assert (root / binary).exists(), binary
    config = root / "etc/appliance/appliance.toml"
    st = config.stat()
    assert st.st_mode & 0o777 == 0o640 and st.st_uid == 0
    gid = int(next(line.split(":")[2] for line in (root / "etc/group").read_text().splitlines()
                   if line.startswith("appliance:")))
    uid = int(next(line.split(":")[2] for line in (root / "etc/passwd").read_text().splitlines()
                   if line.startswith("appliance:")))
    assert st.st_gid == gid
    assert re.search(r'metrics_token = "[0-9a-f]{64}"', config.read_text())
    data = root / "var/lib/appliance"
    assert data.stat().st_mode & 0o777 == 0o700 and data.stat().st_uid == uid
    # Every file the daemon uses is its own, including the database the install migrated.
    for path in [data, *data.rglob("*")]:
        assert path.lstat().st_uid == uid, f"{path} is not the appliance user's"
    assert (root / "var/lib/appliance/appliance.db").exists()
    assert (root / "opt/appliance/venv").is_symlink()
    wants = root / "etc/systemd/system/multi-user.target.wants"
    assert (wants / "appliance.service").is_symlink() and (wants / "appliance-firstboot.service").is_symlink()
    assert (root / "etc/systemd/system/timers.target.wants/appliance-backup.timer").is_symlink()


def test_a_second_run_changes_nothing(device: Device) -> None:
    before = snapshot(device.root)
    out = chroot_offline(device.root, "bash", "-c", f"cd {SRC} && ./install.sh --device --wheelhouse {WHEELHOUSE} "
                         "--firstboot 2>&1 && ./install.sh --check --firstboot 2>&1").stdout
    assert "nothing changed" in out and "nothing would change" in out, out
    assert snapshot(device.root) == before


def test_the_service_reaches_active_under_type_notify(device: Device) -> None:
    started = time.monotonic()
    device.container = Container.boot(device.root, device.root.parent / "console.log")
    ready_s = wait_http(device.url + "/readyz", timeout=120)
    log(f"container boot to /readyz 200: {time.monotonic() - started:.1f}s")
    props = device.box.systemctl("show", "appliance.service", "-p", "Type,ActiveState,SubState,NRestarts,User")
    assert "Type=notify" in props and "ActiveState=active" in props and "SubState=running" in props, props
    assert "NRestarts=0" in props, props
    assert ready_s < 120


def test_first_boot_made_an_admin_who_can_sign_in(device: Device) -> None:
    journal = device.box.sh("journalctl -u appliance-firstboot --no-pager -o cat").stdout
    match = re.search(r"one-time password: (\S+)", journal)
    assert match, journal
    assert (device.root / "var/lib/appliance/.firstboot-done").exists()
    hostname = device.box.sh("cat /etc/hostname").stdout.strip()
    assert re.fullmatch(r"appliance-[0-9a-f]{6}", hostname), hostname
    body = json.dumps({"username": "admin", "password": match.group(1)}).encode()
    req = urllib.request.Request(device.url + "/api/v1/auth/login", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        data = json.loads(resp.read())["data"]
    assert data["user"]["username"] == "admin" and data["must_change_password"] is True


def test_reload_rescans_the_library(device: Device) -> None:
    zim = device.root / "var/lib/appliance/content-cache/zim/example.zim"
    shutil.copy(Path(__file__).resolve().parents[1] / "data" / "example.zim", zim)
    device.box.sh(f"chown appliance:appliance /{zim.relative_to(device.root).as_posix()}")
    device.box.systemctl("reload", "appliance.service")
    deadline = time.monotonic() + 30
    journal = ""
    while time.monotonic() < deadline:
        journal = device.box.sh("journalctl -u appliance --no-pager -o cat").stdout
        if re.search(r"library scan: 1 added", journal):
            break
        time.sleep(0.5)
    assert "SIGHUP: reloading" in journal and re.search(r"library scan: 1 added", journal), journal[-3000:]
    assert "ActiveState=active" in device.box.systemctl("show", "appliance.service", "-p", "ActiveState")


def test_doctor_passes_on_the_installed_device(device: Device) -> None:
    out = device.box.sh("/opt/appliance/venv/bin/appliance doctor 2>&1", check=False)
    assert out.returncode == 0, out.stdout
    for name in ("release", "ownership", "config file", "units", "clock"):
        assert re.search(rf"^PASS  {name}:", out.stdout, re.M), out.stdout


def test_units_verify_and_hardening_score(device: Device) -> None:
    device.box.sh("systemd-analyze verify /etc/systemd/system/appliance.service "
                  "/etc/systemd/system/appliance-firstboot.service /etc/systemd/system/appliance-backup.service "
                  "/etc/systemd/system/appliance-backup.timer")
    out = device.box.sh("systemd-analyze security appliance.service --no-pager 2>&1").stdout
    score = float(re.search(r"Overall exposure level for appliance.service: ([0-9.]+)", out).group(1))
    log(f"systemd-analyze security appliance.service: {score}")
    assert score <= 3.0, out


def test_the_sandbox_lets_ffmpeg_yt_dlp_and_nats_server_work(device: Device) -> None:
    """The same [Service] hardening as appliance.service, running the tools the daemon runs."""
    unit = (device.root / "etc/systemd/system/appliance.service").read_text()
    service = unit.split("[Service]", 1)[1].split("[Install]", 1)[0]
    kept = [line for line in service.splitlines()
            if line and not line.startswith(("#", "Exec", "Type", "Watchdog", "NotifyAccess", "Restart",
                                             "KillMode", "Timeout"))]
    probe = "\n".join([
        "[Service]", "Type=oneshot", *kept,
        "ExecStart=/usr/bin/ffmpeg -hide_banner -loglevel error -f lavfi -i testsrc=duration=2:size=320x240:rate=15"
        " -f lavfi -i sine=duration=2 -c:v mpeg4 -c:a aac -shortest -y /var/lib/appliance/probe.mp4",
        "ExecStart=/opt/appliance/venv/bin/yt-dlp --version",
        "ExecStart=/opt/appliance/venv/bin/python -c 'import yt_dlp, libzim, argon2, saml2, cryptography, psutil; "
        "psutil.virtual_memory(); psutil.net_if_addrs(); print(\"imports ok\")'",
        "ExecStart=/opt/appliance/venv/bin/nats-server --version",
        "",
    ])
    (device.root / "etc/systemd/system/sandbox-probe.service").write_text(probe)
    shutil.copytree(device.root / "etc/systemd/system/appliance.service.d",
                    device.root / "etc/systemd/system/sandbox-probe.service.d", dirs_exist_ok=True)
    device.box.systemctl("daemon-reload")
    started = device.box.sh("systemctl start sandbox-probe.service", check=False)
    journal = device.box.sh("journalctl -u sandbox-probe --no-pager -o cat").stdout
    assert started.returncode == 0, journal
    assert "imports ok" in journal and re.search(r"nats-server: v\d", journal), journal
    probe_file = device.root / "var/lib/appliance/probe.mp4"
    assert probe_file.stat().st_size > 10_000
    probe_file.unlink()
    for path in ("etc/systemd/system/sandbox-probe.service", "etc/systemd/system/sandbox-probe.service.d"):
        target = device.root / path
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    device.box.systemctl("daemon-reload")


def test_the_nightly_backup_unit_writes_an_archive(device: Device) -> None:
    device.box.systemctl("start", "appliance-backup.service")
    archives = sorted((device.root / "var/lib/appliance/backups").glob("appliance-backup-*.tar.gz"))
    assert archives, "no archive written"
    uid = (device.root / "var/lib/appliance").stat().st_uid
    assert archives[-1].stat().st_uid == uid and archives[-1].stat().st_mode & 0o077 == 0
    listing = device.box.sh(f"tar tzf /var/lib/appliance/backups/{archives[-1].name}").stdout
    assert "database/appliance.db" in listing and "config/appliance.toml" in listing
    assert "data/secrets/sync.key" in listing


def test_stop_is_clean(device: Device) -> None:
    started = time.monotonic()
    device.box.systemctl("stop", "appliance.service")
    took = time.monotonic() - started
    props = device.box.systemctl("show", "appliance.service", "-p", "ActiveState,Result,ExecMainStatus")
    assert "ActiveState=inactive" in props and "Result=success" in props and "ExecMainStatus=0" in props, props
    assert took < 30
    left = device.box.sh("ps -eo user=,comm= | grep '^appliance' || true").stdout.strip()
    assert not left, left
    device.box.systemctl("start", "appliance.service")
    wait_http(device.url + "/readyz", timeout=120)


def _next_migration(tree: Path) -> int:
    return max(int(p.name[:4]) for p in (tree / "appliance/db/migrations").glob("[0-9][0-9][0-9][0-9]_*.sql")) + 1


def test_an_upgrade_across_a_schema_migration_keeps_the_data(device: Device) -> None:
    old_release = (device.root / "opt/appliance/venv").readlink().name
    users_before = device.sql("SELECT username FROM users ORDER BY id")
    version = _next_migration(device.root / SRC.lstrip("/"))
    newer = device.root / "root/appliance-newer"
    shutil.copytree(device.root / SRC.lstrip("/"), newer)
    (newer / f"appliance/db/migrations/{version:04d}_upgrade_probe.sql").write_text(
        "CREATE TABLE upgrade_probes (id INTEGER PRIMARY KEY, note TEXT NOT NULL);\n"
        "INSERT INTO upgrade_probes (note) VALUES ('migrated');\n")
    started = time.monotonic()
    out = device.install(tree="/root/appliance-newer")
    log(f"upgrade (build, back up, migrate, restart, ready) took {time.monotonic() - started:.0f}s")
    assert f"upgrading {old_release} ->" in out and "upgraded to" in out, out
    assert device.sql("PRAGMA user_version") == [(version,)]
    assert device.sql("SELECT note FROM upgrade_probes") == [("migrated",)]
    assert device.sql("SELECT username FROM users ORDER BY id") == users_before
    assert (device.root / "opt/appliance/previous").readlink().name == old_release
    assert list((device.root / "var/lib/appliance/backups").glob(f"pre-upgrade-{old_release}-*.db"))
    assert http_get(device.url + "/readyz")[0] == 200


def test_a_failed_upgrade_rolls_back_to_the_previous_release_and_database(device: Device) -> None:
    good_release = (device.root / "opt/appliance/venv").readlink().name
    version_before = device.sql("PRAGMA user_version")[0][0]
    broken = device.root / "root/appliance-broken"
    shutil.copytree(device.root / "root/appliance-newer", broken)
    # A release whose migration succeeds but whose daemon never becomes ready.
    (broken / f"appliance/db/migrations/{version_before + 1:04d}_broken_probe.sql").write_text(
        "CREATE TABLE broken_probes (id INTEGER PRIMARY KEY);\n")
    server = broken / "appliance/server.py"
    server.write_text(server.read_text() + '\nraise RuntimeError("this release is broken on purpose")\n')
    out = device.install(tree="/root/appliance-broken", check=False)
    assert "rolled back" in out, out
    assert (device.root / "opt/appliance/venv").readlink().name == good_release
    assert device.sql("PRAGMA user_version") == [(version_before,)]
    assert not device.sql("SELECT name FROM sqlite_master WHERE name = 'broken_probes'")
    assert device.sql("SELECT note FROM upgrade_probes") == [("migrated",)]
    assert http_get(device.url + "/readyz")[0] == 200
    releases = {p.name for p in (device.root / "opt/appliance/releases").iterdir()}
    assert good_release in releases and len(releases) == 2, releases


def test_uninstall_keeps_the_data(device: Device) -> None:
    out = device.box.sh(f"cd {SRC} && ./install.sh --uninstall 2>&1").stdout
    assert "removing /opt/appliance" in out, out
    assert not (device.root / "opt/appliance").exists()
    assert not (device.root / "etc/systemd/system/appliance.service").exists()
    assert "could not be found" in device.box.sh("systemctl status appliance.service 2>&1", check=False).stdout
    assert (device.root / "var/lib/appliance/appliance.db").exists()
    assert (device.root / "etc/appliance/appliance.toml").exists()


def test_purge_asks_then_removes_the_data(device: Device) -> None:
    refused = device.box.sh(f"cd {SRC} && ./install.sh --purge < /dev/null 2>&1", check=False)
    assert refused.returncode != 0 and "--yes" in refused.stdout
    assert (device.root / "var/lib/appliance/appliance.db").exists()
    device.box.sh(f"cd {SRC} && ./install.sh --purge --yes 2>&1")
    for path in ("var/lib/appliance", "etc/appliance", "opt/appliance"):
        assert not (device.root / path).exists(), path
    assert "appliance:" not in (device.root / "etc/passwd").read_text()
