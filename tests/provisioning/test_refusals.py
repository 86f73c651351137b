"""install.sh --device refuses clearly, and changes nothing, on a system it cannot install on.

Each case runs in a fresh minbase Debian 12 (the cached tarball) in a chroot with no network: another
distribution, too little disk, and the app or content-origin port already taken.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.provisioning.machine import base_rootfs_tarball, chroot_offline, copy_tree, run, unpack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SRC = "/root/appliance-src"
UNCHANGED = "! id appliance 2>/dev/null && test ! -e /opt/appliance && test ! -e /etc/appliance " \
            "&& test ! -e /var/lib/appliance && echo UNCHANGED"

LISTENER = (
    "import socket, sys, time\n"
    "s = socket.socket()\n"
    "s.bind(('127.0.0.1', int(sys.argv[1])))\n"
    "s.listen()\n"
    "time.sleep(120)\n"
)
# Like machine.chroot_offline, but the new network namespace's loopback is up and something listens on
# 127.0.0.1:$PORT there (the host's python3, before entering the chroot), as on a box already serving.
_WITH_LISTENER = r'''
set -e
root="$1"; port="$2"; shift 2
ip link set lo up
python3 -c "$LISTENER" "$port" &
listener=$!
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
set +e
chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
status=$?
kill "$listener"
exit "$status"
'''


def with_listener(root: Path, port: int, script: str) -> subprocess.CompletedProcess[str]:
    """Run a shell script in the chroot, in a namespace of its own where something listens on `port`."""
    return run(["unshare", "--net", "--mount", "--fork", "--propagation", "private",
                "env", f"LISTENER={LISTENER}", "bash", "-c", _WITH_LISTENER, "chroot", str(root), str(port),
                "bash", "-c", script], timeout=300, check=False)


@pytest.fixture
def rootfs(tmp_path: Path) -> Iterator[Path]:
    """A fresh minbase Debian 12 with the source tree in it."""
    root = tmp_path / "root"
    unpack(base_rootfs_tarball(), root)
    copy_tree(root / SRC.lstrip("/"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_another_distribution_is_refused_by_name(rootfs: Path) -> None:
    """Ubuntu (or Debian 11) is named and refused before anything is created."""
    (rootfs / "etc/os-release").unlink()  # a symlink into /usr/lib on Debian
    (rootfs / "etc/os-release").write_text('ID=ubuntu\nVERSION_ID="22.04"\n')
    out = chroot_offline(rootfs, "bash", "-c", f"cd {SRC} && ./install.sh --device 2>&1; echo rc=$?; {UNCHANGED}",
                         check=False)
    assert "this is ubuntu 22.04; the device install supports Debian 12 (bookworm) only" in out.stdout, out.stdout
    assert "rc=1" in out.stdout and "UNCHANGED" in out.stdout, out.stdout


def test_too_little_disk_is_refused_with_the_numbers(rootfs: Path) -> None:
    """A 64 MiB /opt: the script says how much is free and how much it needs, and creates nothing."""
    out = chroot_offline(rootfs, "bash", "-c",
                         f"mount -t tmpfs -o size=64m tmpfs /opt && cd {SRC} && ./install.sh --device 2>&1;"
                         f" echo rc=$?; umount /opt; {UNCHANGED}", check=False)
    assert "not enough disk space for /opt/appliance: 64 MiB free, need 1024 MiB" in out.stdout, out.stdout
    assert "rc=1" in out.stdout and "UNCHANGED" in out.stdout, out.stdout


@pytest.mark.parametrize("taken", ["app", "content origin"])
def test_a_port_in_use_is_refused_before_anything_changes(rootfs: Path, taken: str) -> None:
    """The app's port, or the next one (the content origin's), already serving: refused, nothing created."""
    port = 18080
    listen = port if taken == "app" else port + 1
    script = f"cd {SRC} && ./install.sh --device --port {port} 2>&1; echo rc=$?; {UNCHANGED}"
    out = with_listener(rootfs, listen, script)
    assert f"port {port} or {port + 1} (content origin) is in use on this machine" in out.stdout, out.stdout
    assert "rc=1" in out.stdout and "UNCHANGED" in out.stdout, out.stdout


def test_the_listener_trick_itself_works(rootfs: Path) -> None:
    """The port cases prove something only if the chroot really sees the listener."""
    out = with_listener(rootfs, 18081, "(exec 3<>/dev/tcp/127.0.0.1/18081) 2>/dev/null && echo SEEN; "
                                       "(exec 3<>/dev/tcp/127.0.0.1/18082) 2>/dev/null || echo FREE")
    assert "SEEN" in out.stdout and "FREE" in out.stdout, out.stdout + out.stderr
