"""Benchmark: the appliance's ZIM serving against kiwix-serve on the same archives, machine and load.

Two real archives (tests/bench/archives.py): `pgdocs`, PostgreSQL's manual (small pages, median ~6.9 KB),
and `pydocs`, Python's documentation (median ~54 KB). kiwix-serve (the anchor, measured in the same run)
and the appliance in its default configuration (access log on, 2 HTTP processes, a signed-in learner
reading from the content origin with a content pass as the reader's frame does, visibility checks and view
tracking on) are driven by wrk over the same 500 random article URLs per archive:

- plain requests, then browser-like ones (Accept-Encoding: gzip, deflate; Accept; a browser's User-Agent;
  the cookie): both servers may compress there;
- 30 concurrent searchers with the article load going on, once with distinct queries (no result cache
  hit) and once with 20 repeated ones;
- RSS of every process after the runs.

    .venv/bin/python tests/bench/zim_vs_kiwix.py [--short] [--archives pgdocs,pydocs] [--workers N]
                                                 [--parts articles,search]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.archives import SOURCES, Source, article_paths, build, distinct_queries, rotate_lua  # noqa: E402
from tests.bench.harness import WrkResult, daemon, process_rss, wait_idle, wrk  # noqa: E402

BROWSER = {
    "Accept-Encoding": "gzip, deflate",
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
    "Accept-Language": "en-US,en;q=0.5",
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
}
# Warm-up queries (not measured, and different from the measured ones so no result cache is primed): they
# start search processes and fill the cluster caches of both servers alike.
WARM_QUERIES = ["tuple", "lambda", "tutorial", "library", "string format", "file", "module", "float", "bytes",
                "sorting", "table", "index", "server", "client", "type", "function", "memory", "error"]
DISTINCT_QUERIES = 6000  # more than 30 searchers get through in one run: none is asked twice


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def start_kiwix(zims: list[Path]) -> tuple[subprocess.Popen[bytes], str]:
    """kiwix-serve (Debian kiwix-tools, old URL scheme /{book}/{path}), default 4 threads, every archive."""
    port = free_port()
    proc = subprocess.Popen(["kiwix-serve", "-i", "127.0.0.1", "-p", str(port), "-a", str(os.getpid()),
                             *map(str, zims)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/{zims[0].stem}/index.html")
    return proc, base


def content_pass(base: str, cookie: str) -> tuple[str, str]:
    """What the reader page does: a URL pass from the app origin, traded on the content origin for its cookie.

    Returns (content origin, the Cookie header a browser then sends there: the session and the pass)."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return None

    req = urllib.request.Request(f"{base}/api/v1/library/pass", headers={"Cookie": cookie})
    with urllib.request.urlopen(req, timeout=10) as resp:
        data = json.loads(resp.read())["data"]
    try:
        urllib.request.build_opener(NoRedirect).open(data["url"], timeout=10)
    except urllib.error.HTTPError as exc:
        if exc.code != 303:
            raise
        return data["origin"], f"{cookie}; {exc.headers['Set-Cookie'].split(';', 1)[0]}"
    raise RuntimeError("the content origin did not answer the pass with a redirect")


@dataclass
class Appliance:
    """The daemon under test and the credentials of its signed-in learner."""

    daemon: object
    base: str
    cookie: str
    content: str
    content_cookie: str


def start_appliance(tmp: Path, zims: list[Path], workers: int, extra_toml: str = "") -> Appliance:
    """The daemon in its default configuration, the archives visible to facility 1, a signed-in learner."""
    (tmp / "content" / "zim").mkdir(parents=True)
    for zim in zims:
        shutil.copy(zim, tmp / "content" / "zim" / zim.name)
    # Only the API rate limits are lifted (wrk is one address hammering); everything else is the default.
    toml = ("[auth]\napi_rate_per_minute = 100000000\napi_burst = 100000000\n"
            "api_address_rate_per_minute = 100000000\napi_address_burst = 100000000\n\n" + extra_toml)
    d = daemon(tmp, toml, workers=workers, default_logging=True)
    from appliance.auth.passwords import hash_password
    from appliance.auth.usernames import username_key

    db = sqlite3.connect(d.data_dir / "appliance.db")
    with db:
        db.execute("INSERT INTO users (uuid, username, username_key, facility_id, role, password_hash)"
                   " VALUES (?, 'bench', ?, 1, 'learner', ?)", (str(uuid.uuid4()), username_key("bench"),
                                                                 hash_password("bench password 42")))
        db.execute("INSERT INTO library_visibility (library_id, facility_id) SELECT id, 1 FROM libraries")
    db.close()
    req = urllib.request.Request(f"{d.url}/api/v1/auth/login", method="POST",
                                 data=json.dumps({"username": "bench", "password": "bench password 42"}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        cookie = resp.headers["Set-Cookie"].split(";", 1)[0]
    time.sleep(1.5)  # workers pick up the visibility change within content.refresh_interval_s
    for _ in range(4 * workers):  # a learner opening the library starts each worker's search processes
        urllib.request.urlopen(urllib.request.Request(f"{d.url}/library", headers={"Cookie": cookie}), timeout=10)
    content, content_cookie = content_pass(d.url, cookie)
    for zim in zims:
        req = urllib.request.Request(f"{content}/content/{zim.stem}/index.html", headers={"Cookie": content_cookie})
        try:
            status = urllib.request.urlopen(req, timeout=10).status
        except urllib.error.HTTPError as exc:
            status = exc.code
        if status != 200:
            raise RuntimeError(f"appliance refused the signed-in learner: {status}\n{d.output()[-2000:]}")  # type: ignore[attr-defined]
    return Appliance(d, d.url, cookie, content, content_cookie)


def quiet(args: argparse.Namespace) -> None:
    """Start a run only once both servers are idle (each is measured on a machine the other has left)."""
    waited = wait_idle(args.servers)
    if waited > 1:
        args.waits.append(waited)


def article_run(base: str, prefix: str, paths: list[str], args: argparse.Namespace,
                headers: dict[str, str] | None = None) -> WrkResult:
    """Warm up, then measure."""
    quiet(args)
    script = rotate_lua(prefix, paths)
    wrk(base + prefix, duration=2, connections=args.connections, threads=2, script=script, headers=headers)
    return wrk(base + prefix, duration=args.duration, connections=args.connections, threads=2, script=script,
               headers=headers)


def warm_search(base: str, search_path: str, headers: dict[str, str] | None = None) -> None:
    """Every warm-up query once, a few at a time."""
    def one(q: str) -> None:
        req = urllib.request.Request(base + search_path + quote(q), headers=headers or {})
        with contextlib.suppress(OSError):
            urllib.request.urlopen(req, timeout=60).read()

    threads = [threading.Thread(target=one, args=(q,)) for q in WARM_QUERIES]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def mixed_run(base: str, prefix: str, search_path: str, paths: list[str], queries: list[str],
              args: argparse.Namespace, headers: dict[str, str] | None = None, *, article_base: str | None = None,
              article_headers: dict[str, str] | None = None) -> tuple[WrkResult, WrkResult]:
    """30 searchers (their own wrk) while the article load continues (another wrk), same duration.

    Articles may come from another origin than searches (the appliance's content origin)."""
    quiet(args)
    searches = ",".join(json.dumps(search_path + quote(q)) for q in queries)
    # Searchers behave like the appliance's search page: after a 503 they wait Retry-After seconds.
    search_lua = (f"local urls = {{{searches}}}\nlocal i = 0\nlocal wait = 0\nrequest = function()\n  i = i + 1\n"
                  "  return wrk.format(\"GET\", urls[(i % #urls) + 1])\nend\n"
                  "response = function(status, headers, body)\n"
                  "  if status == 503 then wait = 1000 * tonumber(headers[\"Retry-After\"] or \"1\") end\nend\n"
                  "delay = function()\n  local w = wait\n  wait = 0\n  return w\nend\n")
    results: dict[str, WrkResult] = {}

    def run_search() -> None:
        results["search"] = wrk(base + search_path, duration=args.duration, connections=30, threads=1,
                                script=search_lua, headers=headers, timeout_s=30)

    thread = threading.Thread(target=run_search)
    thread.start()
    results["article"] = wrk((article_base or base) + prefix, duration=args.duration,
                             connections=max(4, args.connections // 4), threads=1, script=rotate_lua(prefix, paths),
                             headers=article_headers or headers, timeout_s=30)
    thread.join()
    return results["search"], results["article"]


@dataclass
class ArchiveResult:
    """Everything measured on one archive."""

    source: Source
    zim: Path
    k_plain: list[WrkResult] = field(default_factory=list)
    a_plain: list[WrkResult] = field(default_factory=list)
    k_browser: list[WrkResult] = field(default_factory=list)
    a_browser: list[WrkResult] = field(default_factory=list)
    searches: dict[str, tuple[WrkResult, WrkResult, WrkResult, WrkResult]] = field(default_factory=dict)


def bench_archive(res: ArchiveResult, kbase: str, app: Appliance, args: argparse.Namespace) -> None:
    """Article runs (plain and browser-like, alternating servers), then searches with articles."""
    book = res.source.name
    paths = article_paths(res.zim, args.urls)
    kprefix, aprefix = f"/{book}/", f"/content/{book}/"
    content_h = {"Cookie": app.content_cookie}
    browser_k = {**BROWSER, "Cookie": app.content_cookie}  # kiwix-serve ignores it, but parses it the same
    browser_a = {**BROWSER, "Cookie": app.content_cookie}
    # Alternate the two servers so that load from elsewhere on the machine hits both alike.
    for _ in range(args.rounds if "articles" in args.parts else 0):
        res.k_plain.append(article_run(kbase, kprefix, paths, args))
        res.a_plain.append(article_run(app.content, aprefix, paths, args, content_h))
    for _ in range(args.rounds if "articles" in args.parts else 0):
        res.k_browser.append(article_run(kbase, kprefix, paths, args, browser_k))
        res.a_browser.append(article_run(app.content, aprefix, paths, args, browser_a))
    if "search" not in args.parts:
        return
    distinct = distinct_queries(res.zim, DISTINCT_QUERIES)
    ksearch, asearch = f"/search?content={book}&pattern=", f"/api/v1/search?books={book}&per_page=25&q="
    warm_search(kbase, ksearch)
    warm_search(app.base, asearch, {"Cookie": app.cookie})
    for label, queries in (("distinct", distinct), ("repeated", list(res.source.queries))):
        ks, ka = mixed_run(kbase, kprefix, ksearch, paths, queries, args)
        as_, aa = mixed_run(app.base, aprefix, asearch, paths, queries, args, {"Cookie": app.cookie},
                            article_base=app.content, article_headers=content_h)
        res.searches[label] = (ks, ka, as_, aa)


def report(res: ArchiveResult, workers: int) -> list[str]:
    """The printed summary of one archive; the lines that say whether each goal is met."""
    out = []
    name = res.source.name
    print(f"\n######## {name} ({res.zim.stat().st_size / 1e6:.1f} MB)")
    for kind, ks, as_ in (("plain", res.k_plain, res.a_plain), ("browser-like", res.k_browser, res.a_browser)):
        if not ks:  # --parts without articles
            continue
        for i, (k, a) in enumerate(zip(ks, as_, strict=True)):
            print(f"{kind} round {i + 1}: kiwix {k.rps:.0f} req/s, appliance {a.rps:.0f} req/s ({a.rps / k.rps:.2f}x)")
        k, a = max(ks, key=lambda r: r.rps), max(as_, key=lambda r: r.rps)
        print(f"== {name} articles, {kind} requests (same URLs, connections, duration; best round of each)")
        print(k.line("kiwix-serve (4 threads)"))
        print(a.line(f"appliance ({workers} HTTP processes)"))
        ratio = a.rps / k.rps
        p99_ok = a.p99_ms <= k.p50_ms
        verdict = "met" if ratio >= 3 and p99_ok else "NOT met"
        line = (f"{name} {kind}: ratio {ratio:.2f}x (goal >= 3x), appliance p99 {a.p99_ms:.2f} ms vs kiwix p50 "
                f"{k.p50_ms:.2f} ms ({'ok' if p99_ok else 'over'}) -> {verdict}")
        print(line)
        out.append(line)
    for label, (ks, ka, as_, aa) in res.searches.items():
        print(f"== {name}: 30 concurrent searchers ({label} queries; 25 results with snippets) while articles load")
        print(ks.line("kiwix-serve search"))
        print(ka.line("kiwix-serve articles"))
        print(as_.line("appliance search (503 = refused)"))
        print(aa.line("appliance articles"))
        ok = as_.requests - as_.non2xx
        print(f"appliance searches answered {ok} ({ok / max(1.0, as_.seconds):.0f}/s), refused with 503 "
              f"{as_.non2xx}; kiwix answered {ks.requests - ks.non2xx}")
        met = as_.p95_ms < 300 and aa.p99_ms < 50 and as_.non2xx == 0
        line = (f"{name} search ({label}): appliance search p95 {as_.p95_ms:.1f} ms (goal < 300), article p99 "
                f"{aa.p99_ms:.1f} ms (goal < 50), refused {as_.non2xx}; kiwix search p95 {ks.p95_ms:.1f} ms, "
                f"article p99 {ka.p99_ms:.1f} ms -> {'met' if met else 'NOT met'}")
        print(line)
        out.append(line)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="4 s runs, one round (the whole script in ~2 min)")
    parser.add_argument("--archives", default="pgdocs,pydocs", help="comma list of: " + ", ".join(SOURCES))
    parser.add_argument("--workers", type=int, default=2, help="appliance HTTP processes (default 2, as shipped)")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--urls", type=int, default=500)
    parser.add_argument("--toml", default="", help="extra appliance config (whole sections), e.g. to turn a lever "
                        "off: '[content]\\nhot_cache_bytes = 0'")
    parser.add_argument("--parts", default="articles,search",
                        help="comma list of what to measure: articles (plain and browser-like runs), search "
                        "(30 searchers while articles load); default both")
    args = parser.parse_args()
    args.parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if not args.parts or args.parts - {"articles", "search"}:
        parser.error("--parts takes a comma list of: articles, search")
    args.duration = 4 if args.short else 10
    args.rounds = 1 if args.short else 3
    results = [ArchiveResult(SOURCES[name], build(SOURCES[name])) for name in args.archives.split(",")]
    print(f"archives {', '.join(str(r.zim) for r in results)}; {args.urls} article URLs each, "
          f"{args.connections} connections, {args.duration} s per run, {args.rounds} rounds, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (other work on the machine skews both)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-zim-"))
    kiwix, kbase = start_kiwix([r.zim for r in results])
    app = None
    try:
        app = start_appliance(tmp, [r.zim for r in results], args.workers, args.toml.replace('\\n', '\n'))
        args.servers, args.waits = [kiwix.pid, app.daemon.pid], []  # type: ignore[attr-defined]
        for res in results:
            bench_archive(res, kbase, app, args)
        time.sleep(3)  # let the last batch of views reach the database
        d = app.daemon
        views = sqlite3.connect(d.data_dir / "appliance.db").execute(  # type: ignore[attr-defined]
            "SELECT COUNT(*) FROM article_views").fetchone()[0]
        a_rss = process_rss(d.pid)  # type: ignore[attr-defined]
        k_rss = process_rss(kiwix.pid)
        access_lines = sum(1 for line in d.log_path.open("rb") if b"appliance.access" in line)  # type: ignore[attr-defined]
    finally:
        kiwix.terminate()
        try:
            kiwix.wait(10)
        except subprocess.TimeoutExpired:  # a loaded machine can keep it busy past SIGTERM
            kiwix.kill()
            kiwix.wait(10)
        if app is not None:
            app.daemon.stop()  # type: ignore[attr-defined]
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average after the runs: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    if args.waits:
        print(f"{len(args.waits)} runs waited for the previous server to go idle first (up to "
              f"{max(args.waits):.1f} s), e.g. kiwix-serve finishing searches queued before its load stopped")
    verdicts = []
    for res in results:
        verdicts += report(res, args.workers)
    print(f"\narticle views recorded by the appliance: {views}; access log lines written: {access_lines}")
    print("\n== RSS after the runs")
    for label, rss in a_rss:
        print(f"appliance {label:<40} {rss / 2**20:8.1f} MiB")
    for label, rss in k_rss:
        print(f"kiwix-serve {label:<38} {rss / 2**20:8.1f} MiB")
    print("\n== goals")
    for line in verdicts:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
