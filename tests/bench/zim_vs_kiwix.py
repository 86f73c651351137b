"""Benchmark: the appliance's ZIM serving against kiwix-serve on the same archive, machine and load.

Builds a real archive from Debian's Python 3.11 documentation, serves it with `kiwix-serve` (the anchor)
and with the appliance (signed-in learner, articles read from its content origin with a content pass as the
reader's frame does, visibility checks and view tracking on), drives both
with wrk over the same ~500 random article URLs, then adds 30 concurrent searchers to the article load.

    .venv/bin/python tests/bench/zim_vs_kiwix.py [--short] [--workers N] [--connections C]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
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
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.harness import WrkResult, daemon, wrk  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DOCS = Path("/usr/share/doc/python3.11/html")
TOOL = REPO.parent / "shared" / "tools" / "zim_from_html.py"
BOOK = "pydocs"
QUERIES = ["list comprehension", "asyncio task", "dictionary", "unicode string", "exception handling",
           "decorator", "generator", "import system", "socket", "thread", "regular expression", "class",
           "iterator", "context manager", "subprocess", "json", "datetime", "logging", "unittest", "pathlib"]
# Warm-up queries (not measured, and different from QUERIES so no result cache is primed): they start
# search processes and fill the cluster caches of both servers alike.
WARM_QUERIES = ["tuple", "lambda", "tutorial", "library", "string format", "file", "module", "float", "bytes",
                "sorting", "argparse", "hashlib", "collections", "typing", "email", "curses", "sqlite", "zip"]


def build_archive(cache: Path) -> Path:
    """The documentation archive (built once, reused by later runs)."""
    target = cache / f"{BOOK}.zim"
    if not target.exists():
        if not DOCS.is_dir():
            raise SystemExit("python3.11-doc is not installed (apt-get install python3.11-doc)")
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / f"{BOOK}.building.zim"
        subprocess.run([sys.executable, str(TOOL), str(DOCS), str(tmp), "--title", "Python 3.11 docs"],
                       check=True, capture_output=True)
        tmp.rename(target)
    return target


def article_paths(zim: Path, n: int) -> list[str]:
    """n random HTML article paths (same seed, same list for both servers)."""
    from libzim.reader import Archive

    archive = Archive(zim)
    paths = []
    for i in range(archive.all_entry_count):
        entry = archive._get_entry_by_id(i)  # noqa: SLF001 - the only way to enumerate entries
        if not entry.is_redirect and entry.get_item().mimetype.startswith("text/html"):
            paths.append(entry.path)
    random.Random(42).shuffle(paths)
    return paths[:n]


def rotate_lua(prefix: str, paths: list[str]) -> str:
    """wrk script cycling through the URLs."""
    items = ",".join(json.dumps(prefix + quote(p, safe="/")) for p in paths)
    return (f"local urls = {{{items}}}\nlocal i = 0\n"
            "request = function()\n  i = i + 1\n  return wrk.format(\"GET\", urls[(i % #urls) + 1])\nend\n")


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


def start_kiwix(zim: Path) -> tuple[subprocess.Popen[bytes], str]:
    """kiwix-serve (Debian kiwix-tools, old URL scheme /{book}/{path}), default 4 threads."""
    port = free_port()
    proc = subprocess.Popen(["kiwix-serve", "-i", "127.0.0.1", "-p", str(port), "-a", str(os.getpid()), str(zim)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/{BOOK}/index.html")
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


def start_appliance(tmp: Path, zim: Path, workers: int, search_cache: bool) -> tuple[object, str, str, str, str]:
    """The daemon with the archive visible to facility 1 and a signed-in learner.

    Returns (daemon, app base, session cookie, content origin, the Cookie header for the content origin)."""
    (tmp / "content" / "zim").mkdir(parents=True)
    shutil.copy(zim, tmp / "content" / "zim" / zim.name)
    toml = (f"[content]\ncluster_cache_bytes = 268435456\nsearch_cache_entries = {512 if search_cache else 0}\n\n"
            "[auth]\napi_rate_per_minute = 100000000\napi_burst = 100000000\n"
            "api_address_rate_per_minute = 100000000\napi_address_burst = 100000000\n")
    d = daemon(tmp, toml, workers=workers)
    from appliance.auth.passwords import hash_password
    from appliance.auth.usernames import username_key

    db = sqlite3.connect(d.data_dir / "appliance.db")
    with db:
        db.execute("INSERT INTO users (uuid, username, username_key, facility_id, role, password_hash)"
                   " VALUES (?, 'bench', ?, 1, 'learner', ?)", (str(uuid.uuid4()), username_key("bench"),
                                                                 hash_password("bench password 42")))
        db.execute("INSERT INTO library_visibility (library_id, facility_id)"
                   " SELECT id, 1 FROM libraries WHERE slug = ?", (BOOK,))
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
    req = urllib.request.Request(f"{content}/content/{BOOK}/index.html", headers={"Cookie": content_cookie})
    try:
        status = urllib.request.urlopen(req, timeout=10).status
    except urllib.error.HTTPError as exc:
        status = exc.code
    if status != 200:
        raise RuntimeError(f"appliance refused the signed-in learner: {status}\n{d.output()[-2000:]}")
    return d, d.url, cookie, content, content_cookie


def article_run(base: str, prefix: str, paths: list[str], args: argparse.Namespace,
                headers: dict[str, str] | None = None) -> WrkResult:
    """Warm up, then measure."""
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


def mixed_run(base: str, prefix: str, search_path: str, paths: list[str], args: argparse.Namespace,
              headers: dict[str, str] | None = None, *, article_base: str | None = None,
              article_headers: dict[str, str] | None = None) -> tuple[WrkResult, WrkResult]:
    """30 searchers (their own wrk) while the article load continues (another wrk), same duration.

    Articles may come from another origin than searches (the appliance's content origin)."""
    warm_search(base, search_path, headers)
    searches = ",".join(json.dumps(search_path + quote(q)) for q in QUERIES)
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="5 s runs (the whole script in about a minute)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="appliance HTTP workers")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--urls", type=int, default=500)
    parser.add_argument("--no-search-cache", action="store_true", help="measure searches with the result cache off")
    args = parser.parse_args()
    args.duration = 5 if args.short else 15
    args.rounds = 2 if args.short else 3
    cache = Path(tempfile.gettempdir()) / "appliance-bench-zim"
    zim = build_archive(cache)
    paths = article_paths(zim, args.urls)
    print(f"archive {zim} ({zim.stat().st_size / 1e6:.1f} MB), {len(paths)} article URLs, "
          f"{args.connections} connections, {args.duration} s per run, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} (other work on the machine skews both servers)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-zim-"))
    kiwix, kbase = start_kiwix(zim)
    d, abase, cookie, cbase, content_cookie = start_appliance(tmp, zim, args.workers, not args.no_search_cache)
    cookie_h = {"Cookie": cookie}
    content_h = {"Cookie": content_cookie}
    k_runs: list[WrkResult] = []
    a_runs: list[WrkResult] = []
    try:
        # Alternate the two servers so that load from elsewhere on the machine hits both alike.
        for _ in range(args.rounds):
            k_runs.append(article_run(kbase, f"/{BOOK}/", paths, args))
            a_runs.append(article_run(cbase, f"/content/{BOOK}/", paths, args, content_h))
        k_search, k_mixed = mixed_run(kbase, f"/{BOOK}/", f"/search?content={BOOK}&pattern=", paths, args)
        a_search, a_mixed = mixed_run(abase, f"/content/{BOOK}/",
                                      f"/api/v1/search?books={BOOK}&per_page=25&q=", paths, args, cookie_h,
                                      article_base=cbase, article_headers=content_h)
        time.sleep(3)  # let the last batch of views reach the database
        views = sqlite3.connect(d.data_dir / "appliance.db").execute("SELECT COUNT(*) FROM article_views").fetchone()
    finally:
        kiwix.terminate()
        try:
            kiwix.wait(10)
        except subprocess.TimeoutExpired:  # a loaded machine can keep it busy past SIGTERM
            kiwix.kill()
            kiwix.wait(10)
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    k_art = max(k_runs, key=lambda r: r.rps)
    a_art = max(a_runs, key=lambda r: r.rps)
    print(f"load average after the runs: {os.getloadavg()[0]:.1f}")
    for i, (k, a) in enumerate(zip(k_runs, a_runs, strict=True)):
        print(f"round {i + 1}: kiwix {k.rps:.0f} req/s, appliance {a.rps:.0f} req/s ({a.rps / k.rps:.2f}x)")

    print("\n== articles (same URLs, connections, duration; best round of each)")
    print(k_art.line("kiwix-serve 3.3.0 (4 threads)"))
    print(a_art.line(f"appliance ({args.workers} workers)"))
    print(f"throughput ratio appliance/kiwix: {a_art.rps / k_art.rps:.2f}x (target >= 3x)")
    print(f"appliance p99 {a_art.p99_ms:.2f} ms vs kiwix p50 {k_art.p50_ms:.2f} ms "
          f"(target: p99 <= kiwix p50) -> {'met' if a_art.p99_ms <= k_art.p50_ms else 'NOT met'}")
    print(f"article views recorded by the appliance: {views[0]}")
    print(f"\n== 30 concurrent searchers while articles load (appliance search cache "
          f"{'off' if args.no_search_cache else 'on'}; 20 distinct queries; 25 results with snippets)")
    print(k_search.line("kiwix-serve search"))
    print(k_mixed.line("kiwix-serve articles"))
    print(a_search.line("appliance search (503 = refused)"))
    print(a_mixed.line("appliance articles"))
    ok = a_search.requests - a_search.non2xx
    print(f"appliance searches answered {ok} ({ok / max(1, a_search.seconds):.0f}/s), refused with 503 "
          f"{a_search.non2xx}; kiwix answered {k_search.requests - k_search.non2xx}")
    print(f"search p95: appliance {a_search.p95_ms:.1f} ms vs kiwix {k_search.p95_ms:.1f} ms (target < 300 ms); "
          f"article p99: appliance {a_mixed.p99_ms:.1f} ms vs kiwix {k_mixed.p99_ms:.1f} ms (target < 50 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
