"""Classroom load test: how many learners can this box take at once? (Locust, headless, worker processes)

Starts the appliance in its default configuration (2 HTTP processes, access log on) with the small-page
archive (pgdocs, tests/bench/archives.py), one video and N learner accounts, and kiwix-serve with the same
archive; then runs tests/bench/classroom_locust.py against them: learners sign in at --rate a second (a
class starting), then read at human pace (think time 2-8 s, mean 5), with their assets, following links;
the mixed load adds the library list, searches, suggestions and some video. The number of learners goes
up in --steps; each step holds while page-view p95 < 200 ms and errors < 0.1 %.

Runs, by default: the mixed load and the reading-only load on the appliance, the reading-only load on
kiwix-serve, each with learners that keep a browser-like cache (honouring Cache-Control and ETag) and
without one (the conservative figure: every asset every time).

    .venv/bin/python tests/bench/classroom.py [--short] [--runs appliance:mixed,kiwix:reading]
        [--steps 1000,2000,4000] [--hold 30] [--cache both|on|off] [--locust-workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.archives import PGDOCS, build, distinct_queries, pages  # noqa: E402
from tests.bench.harness import daemon  # noqa: E402
from tests.bench.zim_vs_kiwix import start_kiwix  # noqa: E402

HERE = Path(__file__).resolve().parent
PASSWORD = "classroom password 42"  # noqa: S105 - the bench's learners
VIDEO_BITRATE_BYTES = 2_800_000 // 8  # what the test video is encoded at (video + audio)


def make_video(cache: Path) -> Path:
    """A 20 s 720p test video (~2.8 Mbit/s), made once with ffmpeg."""
    path = cache / "classroom-video.mp4"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / f"classroom-video.building-{os.getpid()}.mp4"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                        "testsrc2=duration=20:size=1280x720:rate=25", "-f", "lavfi", "-i",
                        "sine=frequency=440:duration=20", "-vf", "noise=alls=20:allf=t",
                        "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "2500k", "-c:a", "aac", "-shortest",
                        "-movflags", "+faststart", str(tmp)], check=True, timeout=600)
        tmp.rename(path)
    return path


def start_appliance(tmp: Path, zim: Path, video: Path, users: int) -> object:
    """The daemon as shipped (2 HTTP processes, access log on), the archive visible, users and a video.

    Only the per-address limits are raised: a whole class reaches the box through one address here (as
    behind a school's NAT), which the defaults, made for one person per address, would refuse."""
    (tmp / "content" / "zim").mkdir(parents=True)
    shutil.copy(zim, tmp / "content" / "zim" / zim.name)
    (tmp / "content" / "videos" / "1").mkdir(parents=True)
    shutil.copy(video, tmp / "content" / "videos" / "1" / "video.mp4")
    toml = ("[auth]\napi_address_rate_per_minute = 100000000\napi_address_burst = 100000000\n"
            "login_rate_per_minute = 100000000\nlogin_burst = 100000000\n\n[media]\nbackend = \"disk\"\n")
    d = daemon(tmp, toml, workers=2, default_logging=True)
    from appliance.auth.passwords import hash_password
    from appliance.auth.usernames import username_key

    hashed = hash_password(PASSWORD)  # one hash for all: sign-in still verifies it for each learner
    db = sqlite3.connect(d.data_dir / "appliance.db")  # type: ignore[attr-defined]
    with db:
        db.executemany("INSERT INTO users (uuid, username, username_key, facility_id, role, password_hash)"
                       " VALUES (?, ?, ?, 1, 'learner', ?)",
                       [(str(uuid.uuid4()), f"learner{i}", username_key(f"learner{i}"), hashed) for i in range(users)])
        db.execute("INSERT INTO library_visibility (library_id, facility_id) SELECT id, 1 FROM libraries")
        db.execute("INSERT INTO videos (id, source_kind, title, availability, storage_key, size_bytes, etag,"
                   " available_at) VALUES (1, 'upload', 'Lecture', 'available', 'videos/1/video.mp4', ?, 'v1',"
                   " strftime('%Y-%m-%dT%H:%M:%fZ','now'))", (video.stat().st_size,))
        db.execute("INSERT INTO video_facilities (video_id, facility_id) VALUES (1, 1)")
    db.close()
    time.sleep(1.5)  # every process picks up the visibility change
    return d


def run_locust(cfg: dict[str, object], host: str, workers: int, tmp: Path, timeout_s: float) -> list[dict]:
    """One headless Locust run (a master and `workers` worker processes); the step lines it wrote."""
    out = tmp / f"steps-{time.monotonic_ns()}.jsonl"
    gen_pids = tmp / f"gen-{time.monotonic_ns()}.pids"
    cfg = {**cfg, "out": str(out), "generator_pids": str(gen_pids), "workers": workers}
    env = {**os.environ, "CLASSROOM": json.dumps(cfg)}
    locust = [sys.executable, "-m", "locust", "-f", str(HERE / "classroom_locust.py"), "--host", host,
              "--headless", "--only-summary", "--loglevel", "ERROR"]
    log = (tmp / "locust.log").open("ab")
    port = _free_port()
    master = subprocess.Popen([*locust, "--master", "--expect-workers", str(workers), "--master-bind-port", str(port)],
                              env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    procs = [subprocess.Popen([*locust, "--worker", "--master-port", str(port)], env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True) for _ in range(workers)]
    gen_pids.write_text(" ".join(str(p.pid) for p in procs))
    try:
        master.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        print(f"  (the run passed its {timeout_s:.0f} s budget and was stopped)")
    finally:
        for proc in [master, *procs]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in [master, *procs]:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        log.close()
    if not out.exists():
        raise RuntimeError(f"locust wrote no step:\n{(tmp / 'locust.log').read_text()[-3000:]}")
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def print_run(title: str, steps: list[dict], cores: int) -> None:
    """The table of one run and what it means."""
    print(f"\n== {title}")
    print(f"{'learners':>8} {'views/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'errors':>10} {'srv cores':>9} "
          f"{'CPU ms/view':>11} {'kernel':>6} {'conn/view':>9} {'srv RSS':>8} {'gen cores':>9} {'load':>5}  holds")
    for s in steps:
        a = s["arrival"]
        saturated = s["generator_max_process_cores"] > 0.9 or s["generator_cores"] + s["server_cores"] > cores * 0.95
        print(f"{s['arrived']:>8} {s['page_views_per_s']:>8.1f} {s['p50_ms'] or 0:>7.0f} {s['p95_ms'] or 0:>7.0f} "
              f"{s['failures']:>4}/{s['requests']:<5} {s['server_cores']:>9.2f} "
              f"{s['server_cpu_ms_per_view'] or 0:>11.2f} {(s.get('server_system_share') or 0) * 100:>5.0f}% "
              f"{s.get('new_connections_per_view') or 0:>9.2f} {s['server_rss_mib']:>6.0f}Mi "
              f"{s['generator_cores']:>9.2f} {s['load_average']:>5.1f}  "
              f"{'yes' if s['holds'] else 'NO'}"  # decided where the step ran
              + ("  [GENERATOR SATURATED: the load generator, not the server, was the limit]" if saturated else ""))
        if s["errors_by_name"]:
            print(f"         errors: {s['errors_by_name']}")
        if s.get("server_ms_per_view_by_process"):
            print("         CPU ms per page view by process: "
                  + ", ".join(f"{k} {v:.3f}" for k, v in s["server_ms_per_view_by_process"].items()))
        if a.get("sign_ins"):
            print(f"         arrival: {a['sign_ins']} sign-ins, p50 / p95 / max {(a['sign_in_p50_ms'] or 0) / 1000:.1f}"
                  f" / {(a['sign_in_p95_ms'] or 0) / 1000:.1f} / {(a['sign_in_max_ms'] or 0) / 1000:.1f} s, every"
                  f" learner signed in {a['all_signed_in_after_s']:.0f} s after the last arrived"
                  f" ({a['signed_in']} of {a['learners']}); meanwhile {a.get('page_views', 0)} page views,"
                  f" p95 {a.get('page_p95_ms') or 0:.0f} ms; {a['failures']} errors while arriving"
                  + (f": {a['errors_by_name']}" if a["errors_by_name"] else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true",
                        help="CI: 30 learners, ~60 s, appliance mixed load only, no cache (asserts no error)")
    parser.add_argument("--runs", default="appliance:mixed,appliance:reading,kiwix:reading",
                        help="comma list of target:mix (targets appliance, kiwix; mixes reading, mixed)")
    parser.add_argument("--steps", default="1000,2000,4000")
    parser.add_argument("--hold", type=float, default=30.0, help="seconds measured at each step")
    parser.add_argument("--rate", type=float, default=20.0, help="sign-ins (arrivals) per second")
    parser.add_argument("--cache", choices=("both", "on", "off"), default="both",
                        help="learners with a browser-like cache, without, or one run of each")
    parser.add_argument("--locust-workers", type=int, default=2)
    args = parser.parse_args()
    if args.short:
        args.runs, args.steps, args.hold, args.cache = "appliance:mixed", "30", 20.0, "off"
    steps = [int(s) for s in args.steps.split(",")]
    runs = [tuple(r.split(":")) for r in args.runs.split(",")]
    caches = {"both": [False, True], "on": [True], "off": [False]}[args.cache]
    zim = build(PGDOCS)
    cache_dir = zim.parent if os.access(zim.parent, os.W_OK) else Path(tempfile.gettempdir())
    tmp = Path(tempfile.mkdtemp(prefix="bench-classroom-"))
    page_list = [asdict(p) for p in pages(zim)]
    (tmp / "pages.json").write_text(json.dumps(page_list))
    queries = distinct_queries(zim, 3000)
    video = make_video(cache_dir) if any(m == "mixed" for _, m in runs) else None
    cores = os.cpu_count() or 2
    print(f"classroom: {len(page_list)} pages of {zim.name} (assets per page: "
          f"{sum(len(p['assets']) for p in page_list) / len(page_list):.1f}), steps {steps}, hold {args.hold:.0f} s, "
          f"arrivals {args.rate:.0f}/s, {args.locust_workers} Locust worker processes, {cores} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")
    d = kiwix = None
    failures = 0
    results: list[tuple[str, list[dict]]] = []
    try:
        if any(t == "appliance" for t, _ in runs):
            d = start_appliance(tmp / "appliance", zim, video or zim, max(steps) + 100)
        if any(t == "kiwix" for t, _ in runs):
            kiwix, kbase = start_kiwix([zim])
        for target, mix in runs:
            for cache in caches:
                if target == "appliance":
                    assert d is not None
                    base = d.url  # type: ignore[attr-defined]
                    content, prefix, pids = d.content_url, f"/content/{PGDOCS.name}/", [d.pid]  # type: ignore[attr-defined]
                else:
                    assert kiwix is not None and mix == "reading", "kiwix-serve takes the reading-only mix"
                    base, content, prefix, pids = kbase, kbase, f"/{PGDOCS.name}/", [kiwix.pid]
                cfg = {"target": target, "mix": mix, "cache": cache, "steps": steps, "hold_s": args.hold,
                       "settle_s": 5.0 if args.short else 10.0, "rate": args.rate, "app": base, "content": content,
                       "prefix": prefix, "book": PGDOCS.name, "pages": str(tmp / "pages.json"), "queries": queries,
                       "users": max(steps) + 100, "password": PASSWORD, "server_pids": pids,
                       "video": f"{base}/videos/1/stream", "video_size": video.stat().st_size if video else 0,
                       "video_bytes_per_s": VIDEO_BITRATE_BYTES, "video_fraction": 0.05}
                budget = sum(s / args.rate * 1.5 + 30 + args.hold + 15 for s in steps) + 120
                server = ("appliance (2 HTTP processes, defaults)" if target == "appliance"
                          else "kiwix-serve (4 threads)")
                learners = ("WITH a browser-like cache (Cache-Control/ETag honoured)" if cache
                            else "without a cache (conservative: every asset every time)")
                title = f"{server}, {mix} load, learners {learners}"
                result = run_locust(cfg, base, args.locust_workers, tmp, budget)
                results.append((title, result))
                print_run(title, result, cores)
                failures += sum(s["failures"] for s in result)
    finally:
        if kiwix is not None:
            kiwix.terminate()
            kiwix.wait(10)
        if d is not None:
            d.stop()  # type: ignore[attr-defined]
        if (tmp / "locust.log").exists():
            shutil.copy(tmp / "locust.log", Path(tempfile.gettempdir()) / "classroom-locust.log")
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nload average after the runs: {os.getloadavg()[0]:.2f}")
    if args.short:
        ok = bool(results) and failures == 0 and all(s["page_views"] > 0 and s["arrived"] >= s["users"]
                                                     for _, r in results for s in r)
        print("short run: " + ("no errors" if ok else f"FAILED ({failures} errors)"))
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
