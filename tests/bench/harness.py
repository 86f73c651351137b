"""Benchmark harness: start the daemon or an anchor server, drive it with wrk, report figures and ratios."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.daemon import Daemon, start_daemon  # noqa: E402

_DONE_LUA = r"""
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    "WRKJSON {\"requests\": %d, \"duration_us\": %d, \"errors\": %d, \"non2xx\": %d, " ..
    "\"p50_us\": %d, \"p90_us\": %d, \"p95_us\": %d, \"p99_us\": %d, \"max_us\": %d}\n",
    summary.requests, summary.duration, errors, summary.errors.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(95), latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured."""

    requests: int
    seconds: float
    errors: int
    non2xx: int
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    def line(self, label: str) -> str:
        """One printable summary line."""
        return (f"{label:<34} {self.rps:>10.0f} req/s  p50 {self.p50_ms:7.2f} ms  p95 {self.p95_ms:7.2f} ms  "
                f"p99 {self.p99_ms:7.2f} ms  errors {self.errors} non-2xx {self.non2xx}")


def wrk(url: str, *, duration: float = 10, connections: int = 50, threads: int = 1, script: str = "",
        headers: dict[str, str] | None = None, timeout_s: int = 5) -> WrkResult:
    """Run wrk against url; `script` is extra Lua (e.g. a request() rotating URLs)."""
    binary = shutil.which("wrk")
    if not binary:
        raise SystemExit("wrk not found: apt-get install wrk (install.sh --dev does it)")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script + "\n" + _DONE_LUA)
        lua = fh.name
    cmd = [binary, "-t", str(threads), "-c", str(connections), "-d", f"{duration}s", "--timeout", f"{timeout_s}s",
           "-s", lua]
    for key, value in (headers or {}).items():
        cmd += ["-H", f"{key}: {value}"]
    cmd.append(url)
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    finally:
        os.unlink(lua)
    data = json.loads(out.split("WRKJSON ", 1)[1].splitlines()[0])
    return WrkResult(data["requests"], data["duration_us"] / 1e6, data["errors"], data["non2xx"],
                     data["p50_us"] / 1000, data["p90_us"] / 1000, data["p95_us"] / 1000, data["p99_us"] / 1000)


def tree_rss(pid: int) -> dict[str, int]:
    """Resident memory of a process tree: total, nats-server, and the rest."""
    root = psutil.Process(pid)
    totals = {"all": 0, "nats_server": 0, "appliance": 0}
    for proc in [root, *root.children(recursive=True)]:
        try:
            rss = proc.memory_info().rss
            name = proc.name()
        except psutil.Error:
            continue
        totals["all"] += rss
        totals["nats_server" if name.startswith("nats-server") else "appliance"] += rss
    return totals


def tree_cpu_s(pids: list[int]) -> float:
    """CPU seconds used so far by these processes and all their descendants."""
    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for proc in procs:
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
    return total


def wait_idle(pids: list[int], *, below_cores: float = 0.1, window_s: float = 0.5, limit_s: float = 30) -> float:
    """Wait until these process trees use less than `below_cores` over a window; the seconds waited.

    A server can go on working after its load stops (kiwix-serve finishes a backlog of searches for seconds):
    the next run, of either server, must not start on a machine the previous one still occupies."""
    start = time.monotonic()
    last = tree_cpu_s(pids)
    while time.monotonic() - start < limit_s:
        time.sleep(window_s)
        now = tree_cpu_s(pids)
        if (now - last) / window_s < below_cores:
            break
        last = now
    return time.monotonic() - start


HELLO = r"""
import sys
from aiohttp import web
async def healthz(request):
    return web.json_response({"data": {"status": "alive"}, "meta": {}})
app = web.Application()
app.router.add_get("/healthz", healthz)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


def start_hello(port: int) -> subprocess.Popen[bytes]:
    """The anchor: a bare aiohttp hello-world answering the same JSON on /healthz."""
    proc = subprocess.Popen([sys.executable, "-c", HELLO, str(port)])
    deadline = time.monotonic() + 20
    import urllib.request

    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("hello-world did not start")


def daemon(tmp: Path, extra_toml: str = "", *, workers: int = 1, default_logging: bool = False) -> Daemon:
    """The appliance daemon for a benchmark (info logs and the access log off unless default_logging)."""
    toml = extra_toml if default_logging else "[logging]\nlevel = \"warning\"\naccess_log = false\n" + extra_toml
    return start_daemon(tmp, "", workers=workers, config=_config(tmp, toml))


def _config(tmp: Path, extra: str) -> Path:
    from tests.daemon import write_config

    path = write_config(tmp, "")
    text = path.read_text()
    if "[logging]" in extra:  # else the test config's logging stays (json, info, access log on)
        text = text.replace('[logging]\nlevel = "info"\nformat = "json"\n', "")
    path.write_text(text + "\n" + extra)
    return path


def process_role(proc: psutil.Process) -> str:
    """A short name for one process of a server tree (which part of the appliance it is)."""
    try:
        cmd = " ".join(proc.cmdline())
        name = proc.name()
    except psutil.Error:
        return "?"
    if name.startswith("nats-server"):
        return "nats-server"
    if "appliance.worker" in cmd:
        return "HTTP worker"
    if "appliance serve" in cmd or " serve --config" in cmd:
        return "primary (HTTP + supervisors)"
    if "multiprocessing" in cmd or "spawn_main" in cmd or "forkserver" in cmd:
        return "search/suggest process"
    return name


def process_rss(pid: int) -> list[tuple[str, int]]:
    """(role, RSS bytes) of every process of the tree rooted at pid, then the total."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    out = []
    for proc in procs:
        try:
            out.append((f"{process_role(proc)} [{proc.pid}]", proc.memory_info().rss))
        except psutil.Error:
            continue
    out.append(("total", sum(rss for _, rss in out)))
    return out
