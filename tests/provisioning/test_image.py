"""image/build.sh for real: it builds a disk image offline from a wheelhouse, which boots in QEMU (TCG, no
KVM here) to a ready appliance with DHCP networking and a first admin on the console; and it always
cleans up after itself."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.provisioning.machine import CACHE, REPO, _key, debian_mirror, free_port, log, run, wait_http, wheelhouse

BUILD = REPO / "image" / "build.sh"
READY_WITHIN_S = 180.0
"""From power-on to /readyz 200 (a plain kernel + root file system took about 41 s here, under TCG)."""


def _work_folders() -> set[str]:
    return {str(p) for p in Path("/var/tmp").glob("appliance-image.*")}


def _mounts_under(prefix: str) -> list[str]:
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if prefix in line]


def _loops_for(image: Path) -> str:
    return run(["losetup", "-j", str(image)], timeout=30, check=False).stdout.strip()


def base_tarball() -> Path:
    """Where build.sh keeps the debootstrapped base (kernel included) between runs, keyed by what shapes it."""
    script = BUILD.read_text()
    include = next(line for line in script.splitlines() if line.startswith("include="))
    return CACHE / f"image-base-{_key(include, debian_mirror(), 'systemd-resolved')}.tar"


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A built image (sparse, 4 GiB)."""
    house = wheelhouse()
    out = tmp_path_factory.mktemp("image") / "appliance.img"
    before = _work_folders()
    started = time.monotonic()
    CACHE.mkdir(parents=True, exist_ok=True)
    result = run([str(BUILD), "--wheelhouse", str(house), "--output", str(out), "--size", "4G",
                  "--base-tarball", str(base_tarball())], timeout=2400)
    log(f"image/build.sh took {time.monotonic() - started:.0f}s")
    assert "ready" in result.stdout
    assert _work_folders() == before, "the work folder was left behind"
    assert not _loops_for(out), "a loop device still holds the image"
    yield out
    out.unlink(missing_ok=True)


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_the_image_boots_in_qemu_to_a_ready_appliance(image: Path, tmp_path: Path) -> None:
    port = free_port()
    console = tmp_path / "console.log"
    cmd = ["qemu-system-x86_64", "-machine", "pc", "-accel", "tcg", "-m", "2048", "-smp", "2",
           "-drive", f"file={image},format=raw,if=virtio",
           "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:8080", "-device", "virtio-net-pci,netdev=n0",
           "-display", "none", "-serial", f"file:{console}", "-no-reboot"]
    powered_on = time.monotonic()
    qemu = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        try:
            ready_s = wait_http(f"http://127.0.0.1:{port}/readyz", timeout=READY_WITHIN_S)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- console\n{console.read_text(errors='replace')[-6000:]}") from None
        log(f"QEMU (TCG) power-on to /readyz 200: {time.monotonic() - powered_on:.0f}s")
        # The request reached the guest through QEMU's user network, whose only way in is the address
        # the guest took by DHCP (10.0.2.15): the image's networking works with nothing configured by hand.
        text = console.read_text(errors="replace")
        match = re.search(r"one-time password: (\S+)", text)
        assert match, text[-4000:]
        body = json.dumps({"username": "admin", "password": match.group(1)}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/auth/login", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=20) as resp:
            assert json.loads(resp.read())["data"]["must_change_password"] is True
        assert ready_s <= READY_WITHIN_S
    finally:
        qemu.terminate()
        try:
            qemu.wait(timeout=30)
        except subprocess.TimeoutExpired:
            qemu.kill()
            qemu.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # builds the wheelhouse first when run alone on a fresh machine
def test_a_failed_build_cleans_up_everything(tmp_path: Path) -> None:
    house = wheelhouse()
    garbage = tmp_path / "base.tar"
    garbage.write_bytes(b"this is not a tar archive" * 100)
    out = tmp_path / "broken.img"
    before = _work_folders()
    result = run([str(BUILD), "--wheelhouse", str(house), "--output", str(out), "--base-tarball", str(garbage)],
                 timeout=300, check=False)
    assert result.returncode != 0
    assert "cleaned up" in result.stderr
    assert _work_folders() == before
    assert not _mounts_under("/var/tmp/appliance-image.")
    assert not out.exists() and not Path(f"{out}.partial").exists()


def test_checks_come_before_anything_is_created(tmp_path: Path) -> None:
    before = _work_folders()
    result = run([str(BUILD), "--output", str(tmp_path / "x.img")], timeout=60, check=False)
    assert result.returncode != 0 and "--wheelhouse DIR is required" in result.stderr
    result = run([str(BUILD), "--wheelhouse", str(tmp_path), "--output", str(tmp_path / "x.img")], timeout=60,
                 check=False)
    assert result.returncode != 0 and "has no wheels/ folder" in result.stderr
    assert _work_folders() == before
