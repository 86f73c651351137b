"""Real Debian 12 systems for provisioning tests: cached debootstrap trees, offline chroots, systemd-nspawn boots."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("APPLIANCE_TEST_CACHE", "/var/cache/appliance-tests"))
"""Outside the repository: CI runs on a fresh clone, and these take minutes to make."""
BASE_PACKAGES = ("systemd-sysv", "procps")
"""What a minimal Debian 12 device has beyond minbase: systemd as init, and /bin/kill."""
CLEAN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def log(message: str) -> None:
    """Progress lines (pytest -s shows them; CI logs them on failure)."""
    print(f"[provisioning {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(cmd: list[str], *, timeout: float, check: bool = True, input: str | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """subprocess.run with text output captured; a failure shows the command's output."""
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input, env=env, check=False)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {out.returncode}\n--- stdout\n{out.stdout[-6000:]}\n"
                             f"--- stderr\n{out.stderr[-6000:]}")
    return out


def debian_mirror() -> str:
    """The Debian mirror apt on this machine already uses (never a host name written in the tests)."""
    texts = []
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if path.is_file():
            texts.append(path.read_text())
    for line in "\n".join(texts).splitlines():
        if line.lstrip().startswith("#"):
            continue
        for url in re.findall(r"https?://\S+", line):
            if "security" not in url:
                return url
    raise RuntimeError("no Debian mirror in /etc/apt/sources.list*")


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _locked_build(target: Path, build: callable) -> Path:  # type: ignore[valid-type]
    """Build `target` once (atomically, by a temporary name) unless it is already there."""
    if target.exists():
        return target
    import fcntl

    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two sessions at once build it once
        if not target.exists():
            build(target)
    return target


def base_rootfs_tarball() -> Path:
    """A `debootstrap --variant=minbase bookworm` tree plus BASE_PACKAGES, cached as a tarball."""
    mirror = debian_mirror()
    target = CACHE / f"rootfs-bookworm-minbase-{_key(mirror, *BASE_PACKAGES)}.tar"

    def build(path: Path) -> None:
        work = CACHE / f".build-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        started = time.monotonic()
        log(f"debootstrap minbase bookworm (+{','.join(BASE_PACKAGES)}) into {work}")
        try:
            run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", "bookworm",
                 str(work), mirror], timeout=900)
            run(["tar", "-C", str(work), "--numeric-owner", "-cpf", f"{path}.tmp", "."], timeout=300)
            os.replace(f"{path}.tmp", path)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        log(f"debootstrap done in {time.monotonic() - started:.0f}s -> {path}")

    return _locked_build(target, build)


def wheelhouse_key() -> str:
    """What the wheelhouse is made from: the dependencies and the script's runtime package list."""
    pyproject = (REPO / "pyproject.toml").read_text()
    script = (REPO / "install.sh").read_text()
    runtime = next(line for line in script.splitlines() if line.startswith("runtime_pkgs="))
    builder = script[script.index("build_wheelhouse() {"):script.index("case \"$mode\" in")]
    deps = pyproject[pyproject.index("dependencies"):pyproject.index("[project.optional-dependencies]")]
    build = pyproject[pyproject.index("[build-system]"):pyproject.index("[project]")]
    return _key(deps, build, runtime, builder)


def wheelhouse() -> Path:
    """`install.sh --build-wheelhouse`, cached by what it is made from."""
    target = CACHE / f"wheelhouse-{wheelhouse_key()}"

    def build(path: Path) -> None:
        tmp = Path(f"{path}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        started = time.monotonic()
        log(f"install.sh --build-wheelhouse {tmp}")
        run([str(REPO / "install.sh"), "--build-wheelhouse", str(tmp)], timeout=1800)
        tmp.rename(path)
        log(f"wheelhouse built in {time.monotonic() - started:.0f}s -> {path}")

    return _locked_build(target, build)


def copy_tree(dest: Path, source: Path = REPO) -> None:
    """The files of this checkout that git knows (tracked, or new and not ignored), as a technician gets them."""
    files = run(["git", "-C", str(source), "ls-files", "-co", "--exclude-standard", "-z"], timeout=60).stdout
    dest.mkdir(parents=True, exist_ok=True)
    for name in filter(None, files.split("\0")):
        src = source / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def unpack(tarball: Path, dest: Path) -> None:
    """Extract a cached root file system."""
    dest.mkdir(parents=True)
    run(["tar", "-C", str(dest), "--numeric-owner", "-xpf", str(tarball)], timeout=300)


_CHROOT = r'''
set -e
root="$1"; shift
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --rbind /dev "$root/dev"
echo "network interfaces: $(ls "$root/sys/class/net" | tr '\n' ' ')" >&2
exec chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
'''


def chroot_offline(root: Path, *cmd: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command in the tree with no network at all (a new, empty network namespace) and a clean env.

    The mounts live in a private mount namespace, so they are gone when the command ends.
    """
    return run(["unshare", "--net", "--mount", "--fork", "--propagation", "private", "bash", "-c", _CHROOT,
                "chroot", str(root), *cmd], timeout=timeout, check=check)


@dataclass
class Container:
    """A root file system booted with systemd-nspawn (sharing the host's network)."""

    root: Path
    proc: subprocess.Popen[bytes]
    leader: int
    console: Path

    @classmethod
    def boot(cls, root: Path, console: Path, timeout: float = 60) -> Container:
        """Boot and wait until systemd inside answers."""
        handle = open(console, "wb")  # noqa: SIM115 - lives as long as the container
        proc = subprocess.Popen(["systemd-nspawn", "-q", "-D", str(root), "--boot", "--register=no",
                                 "--keep-unit", "--console=pipe"], stdin=subprocess.DEVNULL, stdout=handle,
                                stderr=subprocess.STDOUT)
        handle.close()
        deadline = time.monotonic() + timeout
        leader = 0
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"systemd-nspawn exited {proc.returncode}:\n{console.read_text()[-4000:]}")
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
            pids = children.read_text().split() if children.exists() else []
            if pids:
                leader = int(pids[0])
                state = subprocess.run(["nsenter", "-t", str(leader), "-a", "systemctl", "is-system-running"],
                                       capture_output=True, text=True, timeout=30, check=False).stdout.strip()
                if state in ("running", "degraded"):
                    return cls(root, proc, leader, console)
            time.sleep(0.5)
        proc.kill()
        raise AssertionError(f"the container did not finish booting in {timeout}s:\n{console.read_text()[-4000:]}")

    def sh(self, script: str, *, timeout: float = 120, check: bool = True,
           input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a shell script inside the container (all its namespaces)."""
        return run(["nsenter", "-t", str(self.leader), "-a", "env", "-i", f"PATH={CLEAN_PATH}", "HOME=/root",
                    "LANG=C.UTF-8", "bash", "-c", script], timeout=timeout, check=check, input=input)

    def systemctl(self, *args: str, check: bool = True) -> str:
        """systemctl inside the container; its output."""
        return self.sh("systemctl " + " ".join(args), check=check).stdout.strip()

    def stop(self, timeout: float = 60) -> None:
        """Power off cleanly; kill if it does not stop in time."""
        if self.proc.poll() is None:
            subprocess.run(["nsenter", "-t", str(self.leader), "-a", "systemctl", "poweroff"],
                           capture_output=True, timeout=30, check=False)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


def http_get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    """A GET that returns error statuses instead of raising."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_http(url: str, timeout: float) -> float:
    """Poll until the URL answers 200; returns the seconds it took."""
    started = time.monotonic()
    last: object = None
    while time.monotonic() - started < timeout:
        try:
            status, _ = http_get(url, timeout=3)
            if status == 200:
                return time.monotonic() - started
            last = status
        except (OSError, urllib.error.URLError) as exc:
            last = exc
        time.sleep(1)
    raise AssertionError(f"{url} did not answer 200 within {timeout}s (last: {last})")


def free_port() -> int:
    """A free TCP port P with P+1 free too (the content origin listens on http.port + 1); the container
    shares the host's network, so both must be free here."""
    import socket

    for _ in range(100):
        with socket.socket() as first:
            first.bind(("0.0.0.0", 0))  # noqa: S104 - the appliance listens on every address
            port = int(first.getsockname()[1])
            if port >= 65535:
                continue
            with socket.socket() as second:
                try:
                    second.bind(("0.0.0.0", port + 1))  # noqa: S104
                except OSError:
                    continue
            return port
    raise RuntimeError("no two adjacent free ports")
