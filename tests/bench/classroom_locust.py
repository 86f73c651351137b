"""Locust file of the classroom load test (run by tests/bench/classroom.py, which sets CLASSROOM to its JSON).

Each simulated learner signs in once (appliance), then at human pace (think time 2-8 s, mean 5) reads
articles of the small-page archive with their assets (one after another, as a conservative browser would),
follows links, and on the mixed load also opens the library list, searches, types into the suggestion box,
and, for a fraction of learners, plays a video with range requests at its bitrate. A page view (HTML plus
its assets) is reported as one "page view" event whose time is the sum of its requests.

With `cache` on, every learner keeps a browser-like cache: a response whose Cache-Control allows reuse
(max-age, not no-cache) is not fetched again while fresh, and one with an ETag is revalidated with
If-None-Match. With it off (the conservative figure) every asset is fetched every time.

The master steps the number of learners; at each step, once every learner has arrived and settled, it
resets the statistics, holds, and writes one JSON line: page views/s, page-view p50/p95, errors, the
server's CPU (cores, and ms per page view) and RSS, and the generator's own CPU.
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

import gevent
import gevent.monkey
import psutil
from geventhttpclient.connectionpool import ConnectionPool
from locust import FastHttpUser, LoadTestShape, events, task
from locust.runners import MasterRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # Locust loads this file by path
from tests.bench.harness import process_role  # noqa: E402

_POLL = gevent.monkey.get_original("select", "poll")
_GONE = 0x001 | 0x008 | 0x010 | 0x020  # POLLIN, POLLERR, POLLHUP, POLLNVAL: FIN, reset, or bytes nobody asked for


def _socket_alive(self: ConnectionPool, sock: Any) -> bool:
    """geventhttpclient's check before reusing a kept-alive socket, with poll() instead of select().

    select() refuses descriptors above 1,023, and the library takes that error for a dead socket: past
    about 500 learners per Locust process every request opened a new connection (measured: 390 new
    connections a second at 2,000 learners, one per page view), which no browser does and which made
    the servers accept and tear down TCP connections instead of serving pages.
    """
    try:
        if sock is None or sock.fileno() < 0:
            return False
        poller = _POLL()
        poller.register(sock.fileno(), _GONE)
        return not poller.poll(0)
    except (OSError, ValueError):
        return False


ConnectionPool._is_socket_alive = _socket_alive  # type: ignore[method-assign]  # noqa: SLF001

CFG: dict[str, Any] = json.loads(os.environ.get("CLASSROOM", "{}") or "{}")
PAGES: list[dict[str, Any]] = json.loads(open(CFG["pages"]).read()) if CFG.get("pages") else []  # noqa: SIM115
QUERIES: list[str] = CFG.get("queries", ["select"])
_MAX_AGE = re.compile(r"max-age=(\d+)")
VIDEO_CHUNK = 512 * 1024
STATE: dict[str, Any] = {"target": 0, "done": False}


class Learner(FastHttpUser):
    """One learner of the class."""

    connection_timeout = 30.0
    network_timeout = 30.0

    def wait_time(self) -> float:
        """Human pace: 2 to 8 seconds, mean 5."""
        return random.triangular(2, 8, 5)

    def on_start(self) -> None:
        self.browser_cache: dict[str, tuple[str | None, float]] = {}  # url -> (ETag, fresh until)
        self.page = random.choice(PAGES)
        self.watcher = CFG["mix"] == "mixed" and random.random() < CFG.get("video_fraction", 0.05)
        if CFG["target"] == "appliance":
            self.sign_in()

    def sign_in(self) -> None:
        """Sign in once, then take the content pass as the reader page does."""
        user = f"learner{random.randrange(CFG['users'])}"
        with self.client.post("/api/v1/auth/login", json={"username": user, "password": CFG["password"]},
                              name="sign in", catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"sign in: {resp.status_code}")
                raise RuntimeError("sign-in failed")  # locust counts it and the learner starts over
        with self.client.get("/api/v1/library/pass", name="content pass", catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"pass: {resp.status_code}")
                raise RuntimeError("no content pass")
            url = resp.json()["data"]["url"]
        with self.client.get(url, name="content pass exchange", allow_redirects=False, catch_response=True) as resp:
            if resp.status_code != 303:
                resp.failure(f"pass exchange: {resp.status_code}")
            else:
                resp.success()

    # ------------------------------------------------------------------ what a learner does

    @task
    def act(self) -> None:
        if self.watcher:
            self.watch_video()
            self.watcher = random.random() < 0.5  # watches on, now and then reads instead
            return
        roll = random.random()
        if CFG["mix"] == "mixed" and roll < 0.08:
            self.get(CFG["app"] + "/library", "library list")
        elif CFG["mix"] == "mixed" and roll < 0.16:
            self.get(CFG["app"] + "/api/v1/search?books=" + CFG["book"] + "&per_page=25&q="
                     + random.choice(QUERIES), "search")
        elif CFG["mix"] == "mixed" and roll < 0.22:
            word = random.choice(QUERIES)
            for n in range(1, min(4, len(word)) + 1):  # a few keystrokes, each a request
                self.get(CFG["app"] + "/api/v1/suggest?book=" + CFG["book"] + "&q=" + word[:n], "suggest")
                gevent.sleep(0.15)
        else:
            links = self.page.get("links") or ()
            self.page = PAGES_BY_PATH.get(random.choice(links)) if links and roll < 0.85 else None
            self.page = self.page or random.choice(PAGES)
            self.page_view(self.page)

    def page_view(self, page: dict[str, Any]) -> None:
        """The article and its assets, one after another; reported as one page view."""
        started = time.perf_counter()
        ok = True
        for i, path in enumerate([page["path"], *page["assets"]]):
            ok = self.get(CFG["content"] + CFG["prefix"] + path, "article" if i == 0 else "asset") and ok
        events.request.fire(request_type="PAGE", name="page view", response_time=(time.perf_counter() - started) * 1000,
                            response_length=0, exception=None if ok else RuntimeError("page view failed"),
                            context={}, url=page["path"])

    def get(self, url: str, name: str) -> bool:
        """One GET as a browser with (or without) a cache would make it; False on an error status."""
        headers = {"Accept-Encoding": "gzip, deflate"}
        if CFG["cache"]:
            held = self.browser_cache.get(url)
            if held is not None:
                if held[1] > time.monotonic():
                    return True  # fresh in the cache: the browser does not ask
                if held[0]:
                    headers["If-None-Match"] = held[0]
        with self.client.get(url, name=name, headers=headers, catch_response=True) as resp:
            if resp.status_code not in (200, 304):
                resp.failure(f"{resp.status_code}")
                return False
            resp.success()
            if CFG["cache"]:
                control = resp.headers.get("Cache-Control") or ""
                age = _MAX_AGE.search(control)
                fresh = time.monotonic() + int(age.group(1)) if age and "no-cache" not in control else 0.0
                etag = resp.headers.get("ETag")
                if fresh or etag:
                    self.browser_cache[url] = (etag, fresh)
        return True

    def watch_video(self) -> None:
        """About 30 s of a video at its bitrate: a 512 KB range, then the time it takes to play it."""
        size, bitrate = CFG["video_size"], CFG["video_bytes_per_s"]
        offset = 0
        until = time.monotonic() + 30
        while time.monotonic() < until:
            end = min(size, offset + VIDEO_CHUNK) - 1
            with self.client.get(CFG["video"], name="video range", headers={"Range": f"bytes={offset}-{end}"},
                                 catch_response=True) as resp:
                if resp.status_code != 206:
                    resp.failure(f"{resp.status_code}")
                    return
                resp.success()
            offset = 0 if end + 1 >= size else end + 1
            gevent.sleep(VIDEO_CHUNK / bitrate)


PAGES_BY_PATH = {p["path"]: p for p in PAGES}


# ---------------------------------------------------------------------------------------------- steps

class Steps(LoadTestShape):
    """Learners wanted now: set by the master's step loop; sign-ins arrive at CFG['rate'] a second."""

    def tick(self) -> tuple[int, float] | None:
        if STATE["done"]:
            return None
        return int(STATE["target"]), float(CFG.get("rate", 20))


def _cpu(procs: list[psutil.Process], *, system_only: bool = False) -> float:
    """CPU seconds used by these processes (user + system, or only the system part: the kernel's work)."""
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.system if system_only else times.user + times.system
        except psutil.Error:
            continue
    return total


def _tree(pids: list[int]) -> list[psutil.Process]:
    out: list[psutil.Process] = []
    for pid in pids:
        try:
            root = psutil.Process(pid)
            out += [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
    return out


def _rss(procs: list[psutil.Process]) -> int:
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


def _passive_opens() -> int:
    """TCP connections accepted on this machine so far (Tcp PassiveOpens in /proc/net/snmp)."""
    with open("/proc/net/snmp") as snmp:
        rows = [line.split() for line in snmp if line.startswith("Tcp:")]
    return int(rows[1][rows[0].index("PassiveOpens")])


def _signed_in(runner: MasterRunner) -> int:
    """Learners whose sign-in finished since the last statistics reset (the pass exchange is its last step)."""
    done = runner.stats.get("content pass exchange", "GET")
    return done.num_requests - done.num_failures


def _arrival(runner: MasterRunner, users: int, since_last_arrival_s: float) -> dict[str, Any]:
    """What the class's arrival cost: sign-in latency and the errors of the ramp, before they are reset."""
    sign_in = runner.stats.get("sign in", "POST")
    page = runner.stats.get("page view", "PAGE")
    return {
        "sign_ins": sign_in.num_requests, "sign_in_failures": sign_in.num_failures,
        "sign_in_p50_ms": sign_in.get_response_time_percentile(0.5) if sign_in.num_requests else None,
        "sign_in_p95_ms": sign_in.get_response_time_percentile(0.95) if sign_in.num_requests else None,
        "sign_in_max_ms": sign_in.max_response_time if sign_in.num_requests else None,
        "failures": runner.stats.total.num_failures - page.num_failures,
        # The learners already in class read while the others sign in: their pages must not wait for it.
        "page_views": page.num_requests,
        "page_p95_ms": page.get_response_time_percentile(0.95) if page.num_requests else None,
        "errors_by_name": {f"{e.method} {e.name}": e.occurrences for e in runner.stats.errors.values()},
        # Seconds from the last learner's arrival until every learner had signed in: the sign-in backlog.
        "all_signed_in_after_s": round(since_last_arrival_s, 1), "learners": users,
    }


def _step_loop(runner: MasterRunner) -> None:
    """Each step: ramp, wait for every sign-in, settle, reset, hold, measure, write a line; stop after a
    step that did not hold.

    The hold measures the learners present, not their arrival: it starts once every learner has signed
    in (a sign-in backlog, when the box is busy, would otherwise spill into it). The arrival is measured
    too (sign-in latency, errors, the page views of those already in) and a step whose arrival had errors
    or a page-view p95 of 200 ms or more does not hold either.
    """
    out = open(CFG["out"], "a", buffering=1)  # noqa: SIM115 - closed when the run ends
    servers = _tree(CFG["server_pids"])
    signed_in = 0  # cumulative over the statistics resets
    try:
        for users in CFG["steps"]:
            signed_in += _signed_in(runner)
            runner.stats.reset_all()  # the arrival's statistics start here
            STATE["target"] = users
            ramp_started = time.monotonic()
            budget = users / CFG["rate"] * 1.5 + 30
            while runner.user_count < users and time.monotonic() - ramp_started < budget:
                gevent.sleep(1)
            ramp_s = time.monotonic() - ramp_started
            arrived_at = time.monotonic()
            signs_in = CFG["target"] == "appliance"  # kiwix-serve has no accounts
            while (signs_in and signed_in + _signed_in(runner) < users
                   and time.monotonic() - ramp_started < budget + 120):
                gevent.sleep(1)
            backlog_s = time.monotonic() - arrived_at
            gevent.sleep(CFG["settle_s"])
            arrival = _arrival(runner, users, backlog_s)
            signed_in += _signed_in(runner)
            arrival["signed_in"] = signed_in
            generators = _tree([os.getpid(), *_generator_pids()])
            servers = _tree(CFG["server_pids"])  # processes started since (search processes start on demand)
            runner.stats.reset_all()  # the hold's statistics start here
            cpu0, gen0 = _cpu(servers), {p.pid: _cpu([p]) for p in generators}
            each0 = {p.pid: _cpu([p]) for p in servers}
            sys0 = _cpu(servers, system_only=True)
            opened0 = _passive_opens()
            t0 = time.monotonic()
            gevent.sleep(CFG["hold_s"])
            seconds = time.monotonic() - t0
            cpu1 = _cpu(servers)
            by_process: dict[str, float] = {}
            for proc in servers:  # where the server's CPU went: HTTP processes, nats-server, search processes
                role = process_role(proc)
                by_process[role] = by_process.get(role, 0.0) + _cpu([proc]) - each0.get(proc.pid, 0.0)
            sys1 = _cpu(servers, system_only=True)
            opened = _passive_opens() - opened0
            gen = {p.pid: (_cpu([p]) - gen0.get(p.pid, 0.0)) / seconds for p in generators}
            page = runner.stats.get("page view", "PAGE")
            total = runner.stats.total
            views = page.num_requests
            line = {
                "users": users, "arrived": runner.user_count, "arrival": arrival, "ramp_s": round(ramp_s, 1),
                "hold_s": round(seconds, 1),
                "page_views_per_s": views / seconds, "page_views": views,
                "p50_ms": page.get_response_time_percentile(0.5) if views else None,
                "p95_ms": page.get_response_time_percentile(0.95) if views else None,
                "requests": total.num_requests - views, "failures": total.num_failures - page.num_failures,
                "errors_by_name": {f"{e.method} {e.name}": e.occurrences for e in runner.stats.errors.values()},
                "server_cores": (cpu1 - cpu0) / seconds,
                "server_cpu_ms_per_view": (cpu1 - cpu0) * 1000 / views if views else None,
                # The kernel's part (sockets, scheduling): what no server code can take off a page view.
                "server_system_share": (sys1 - sys0) / (cpu1 - cpu0) if cpu1 > cpu0 else None,
                "server_ms_per_view_by_process": {k: round(v * 1000 / max(1, views), 3)
                                                  for k, v in sorted(by_process.items())},
                # TCP connections the servers accepted (machine-wide; nothing else connects): a browser
                # keeps its connections, so a class that has arrived should open almost none.
                "new_connections_per_view": opened / views if views else None,
                "server_rss_mib": _rss(servers) / 2**20,
                "generator_cores": sum(gen.values()), "generator_max_process_cores": max(gen.values(), default=0),
                "load_average": os.getloadavg()[0],
                "by_name": {f"{s.method} {s.name}": {"n": s.num_requests, "fail": s.num_failures,
                                                     "p95_ms": s.get_response_time_percentile(0.95)}
                            for s in runner.stats.entries.values() if s.num_requests},
            }
            line["holds"] = ((line["p95_ms"] or 1e9) < 200 and line["failures"] / max(1, line["requests"]) < 0.001
                             and line["arrived"] >= users * 0.98 and arrival["failures"] / max(1, users) < 0.001
                             and (arrival["page_p95_ms"] or 0) < 200)
            out.write(json.dumps(line) + "\n")
            if not line["holds"]:
                break  # this step did not hold: no point in a bigger one
    finally:
        out.close()
        STATE["done"] = True


def _generator_pids() -> list[int]:
    try:
        return [int(x) for x in open(CFG["generator_pids"]).read().split()]  # noqa: SIM115
    except (OSError, ValueError):
        return []


@events.init.add_listener
def _on_init(environment: Any, **_kw: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        gevent.spawn(_wait_then_step, environment.runner)


def _wait_then_step(runner: MasterRunner) -> None:
    while runner.worker_count < CFG.get("workers", 1):
        gevent.sleep(0.5)
    _step_loop(runner)
