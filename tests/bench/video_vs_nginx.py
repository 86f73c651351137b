"""Benchmark: video streaming from the appliance against nginx (sendfile) and against S3 read directly.

Serves the same mp4 files with nginx (Debian, `sendfile on`, its own temp config on a free port) and with
the appliance from local disk, then from a SeaweedFS bucket through the appliance (ranged pass-through) and
straight from the bucket (presigned URLs). 50 concurrent clients do ranged reads and seeks over several files
(wrk with a Lua script cycling through the same seeded list of file/offset pairs for every server). Both
servers run at once and short runs alternate between them, so background load hits both alike; prints
median throughput and p99 latency for both sides and the ratio per round (target: appliance >= 0.7 of nginx).

    .venv/bin/python tests/bench/video_vs_nginx.py [--short] [--workers N] [--connections C] [--no-s3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.harness import WrkResult, daemon, wrk  # noqa: E402
from tests.media.realservers import free_port, start_weed  # noqa: E402

FILES = 4
CHUNK = 512 * 1024  # a player's typical ranged read
PAIRS = 400


def build_videos(cache: Path) -> list[Path]:
    """A few 720p-ish test videos of several MB each (made once, reused)."""
    cache.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(FILES):
        path = cache / f"lecture{i}.mp4"
        if not path.exists():
            tmp = cache / f"building{i}.mp4"
            # noise keeps the encoder from shrinking the test pattern to nothing: ~2-3 MB/s like a real 720p video
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                            f"testsrc2=duration={20 + 5 * i}:size=1280x720:rate=25", "-f", "lavfi", "-i",
                            f"sine=frequency=440:duration={20 + 5 * i}", "-vf", "noise=alls=20:allf=t",
                            "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "2500k", "-c:a", "aac", "-shortest",
                            "-movflags", "+faststart", str(tmp)], check=True, timeout=600)
            tmp.rename(path)
        out.append(path)
    return out


def ranges(sizes: list[int]) -> list[tuple[int, int, int]]:
    """Seeded (file index, start, end) triples: seeks all over every file."""
    rnd = random.Random(7)
    out = []
    for _ in range(PAIRS):
        i = rnd.randrange(len(sizes))
        start = rnd.randrange(0, max(1, sizes[i] - CHUNK))
        out.append((i, start, min(sizes[i], start + CHUNK) - 1))
    return out


def lua(urls: list[str], triples: list[tuple[int, int, int]], headers: dict[str, str] | None = None) -> str:
    """wrk script: each request is the next (url, Range) pair (no response() hook: it makes wrk copy bodies)."""
    items = ",".join(f"{{{json.dumps(urls[i])}, \"bytes={s}-{e}\"}}" for i, s, e in triples)
    extra = "".join(f"h[{json.dumps(k)}] = {json.dumps(v)}\n" for k, v in (headers or {}).items())
    return (f"local reqs = {{{items}}}\nlocal i = 0\n"
            "request = function()\n  i = i + 1\n  local r = reqs[(i % #reqs) + 1]\n"
            f"  local h = {{}}\n  h[\"Range\"] = r[2]\n{extra}"
            "  return wrk.format(\"GET\", r[1], h)\nend\n")


def script_for(urls: list[str], triples: list[tuple[int, int, int]], headers: dict[str, str] | None = None) -> str:
    """The wrk Lua script for one server."""
    return lua(urls, triples, headers)


def warm(base: str, url: str, script: str, args: argparse.Namespace) -> None:
    """Warm up (the daemon's workers and caches settle in the first seconds)."""
    wrk(base + url, duration=5, connections=args.connections, threads=2, script=script)


def alternate(anchor: tuple[str, str, str], ours: tuple[str, str, str],
              args: argparse.Namespace) -> tuple[list[WrkResult], list[WrkResult]]:
    """Alternate short runs of anchor and appliance so background load hits both alike."""
    for base, url, script in (anchor, ours):
        warm(base, url, script, args)
    a_runs: list[WrkResult] = []
    o_runs: list[WrkResult] = []
    for _ in range(args.rounds):
        for (base, url, script), runs in ((anchor, a_runs), (ours, o_runs)):
            runs.append(wrk(base + url, duration=args.duration, connections=args.connections, threads=2,
                            script=script))
    return a_runs, o_runs


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def start_nginx(root: Path, tmp: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    """nginx with sendfile on, serving `root` on a free loopback port."""
    port = free_port()
    prefix = tmp / "nginx"
    prefix.mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(f"""
daemon off;
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    sendfile on;
    tcp_nopush on;
    access_log off;
    types {{ video/mp4 mp4; }}
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
""")
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(prefix)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/v/lecture0.mp4")
    return proc, base


def wait_http(url: str, timeout: float = 30) -> None:
    """Poll until the URL answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read(1)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def start_appliance(tmp: Path, videos: list[Path], workers: int, media_toml: str) -> tuple[object, str, str]:
    """The daemon with the videos registered and visible; returns (daemon, base, session cookie)."""
    toml = media_toml + "\n[auth]\napi_rate_per_minute = 100000000\napi_burst = 100000000\n"
    d = daemon(tmp, toml, workers=workers)
    from appliance.auth.passwords import hash_password
    from appliance.auth.usernames import username_key

    db = sqlite3.connect(d.data_dir / "appliance.db")
    with db:
        db.execute("INSERT INTO users (uuid, username, username_key, facility_id, role, password_hash)"
                   " VALUES (?, 'bench', ?, 1, 'learner', ?)",
                   (str(uuid.uuid4()), username_key("bench"), hash_password("bench password 42")))
    db.close()
    req = urllib.request.Request(f"{d.url}/api/v1/auth/login", method="POST",
                                 data=json.dumps({"username": "bench", "password": "bench password 42"}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        cookie = resp.headers["Set-Cookie"].split(";", 1)[0]
    return d, d.url, cookie


def register(d: object, videos: list[Path], etags: list[str]) -> None:
    """Insert available, visible video rows pointing at the stored files."""
    db = sqlite3.connect(d.data_dir / "appliance.db")  # type: ignore[attr-defined]
    with db:
        for i, (path, etag) in enumerate(zip(videos, etags, strict=True), start=1):
            db.execute("INSERT INTO videos (id, source_kind, title, availability, storage_key, size_bytes, etag,"
                       " available_at) VALUES (?, 'upload', ?, 'available', ?, ?, ?,"
                       " strftime('%Y-%m-%dT%H:%M:%fZ','now'))",
                       (i, path.stem, f"videos/{i}/video.mp4", path.stat().st_size, etag))
            db.execute("INSERT INTO video_facilities (video_id, facility_id) VALUES (?, 1)", (i,))
    db.close()


def check(base: str, url: str, cookie: str | None, expected: bytes) -> None:
    """One ranged read must return exactly the right bytes before we time anything."""
    headers = {"Range": "bytes=1000-1999"}
    if cookie:
        headers["Cookie"] = cookie
    with urllib.request.urlopen(urllib.request.Request(base + url, headers=headers), timeout=10) as resp:
        assert resp.status == 206, resp.status
        assert resp.read() == expected[1000:2000]


def report(title: str, anchor_label: str, anchors: list[WrkResult], ours_label: str, ours: list[WrkResult],
           target: str) -> None:
    """Print medians of both sides (req/s, MiB/s, p50, p99) and the per-round throughput ratios."""
    print(f"\n== {title} ({len(anchors)} alternating rounds, medians)")
    for label, runs in ((anchor_label, anchors), (ours_label, ours)):
        rps = _median([r.rps for r in runs])
        errors = sum(r.errors for r in runs)
        print(f"{label:<34} {rps:>8.0f} req/s {rps * CHUNK / 2**20:8.1f} MiB/s  p50 "
              f"{_median([r.p50_ms for r in runs]):7.2f} ms  p99 {_median([r.p99_ms for r in runs]):7.2f} ms  "
              f"errors {errors}")
    ratios = [o.rps / a.rps for a, o in zip(anchors, ours, strict=True)]
    print(f"throughput ratio appliance/{anchor_label.split()[0]}: median {_median(ratios):.2f} "
          f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})  {target}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="3 rounds of 4 s runs (about 2 minutes in all)")
    parser.add_argument("--rounds", type=int, default=0, help="alternating rounds (default: 3, or 5 without --short)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="appliance HTTP workers")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--no-s3", action="store_true", help="skip the S3 comparison")
    args = parser.parse_args()
    args.duration = 4 if args.short else 10
    args.rounds = args.rounds or (3 if args.short else 5)
    videos = build_videos(Path(tempfile.gettempdir()) / "appliance-bench-video")
    sizes = [v.stat().st_size for v in videos]
    triples = ranges(sizes)
    print(f"{len(videos)} videos ({sum(sizes) / 2**20:.1f} MiB), {len(triples)} ranged reads of {CHUNK // 1024} KiB "
          f"cycled, {args.connections} connections, {args.rounds} x {args.duration} s per side, {os.cpu_count()} CPUs, "
          f"appliance workers {args.workers}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-video-"))
    try:
        web_root = tmp / "www" / "v"
        web_root.mkdir(parents=True)
        for v in videos:
            shutil.copy(v, web_root / v.name)
        os.chmod(tmp, 0o755)  # noqa: S103 - nginx workers run as nobody and must read the files
        disk_tmp = tmp / "disk"
        for i, v in enumerate(videos, start=1):
            (disk_tmp / "content" / "videos" / str(i)).mkdir(parents=True)
            shutil.copy(v, disk_tmp / "content" / "videos" / str(i) / "video.mp4")
        nginx, nbase = start_nginx(tmp / "www", tmp, args.workers)
        try:
            d, abase, cookie = start_appliance(disk_tmp, videos, args.workers, "[media]\nbackend = \"disk\"\n")
            try:
                register(d, videos, ["bench"] * len(videos))
                check(nbase, "/v/lecture0.mp4", None, videos[0].read_bytes())
                check(abase, "/videos/1/stream", cookie, videos[0].read_bytes())
                n_urls = [f"/v/{v.name}" for v in videos]
                a_urls = [f"/videos/{i}/stream" for i in range(1, len(videos) + 1)]
                n_res, a_res = alternate((nbase, n_urls[0], script_for(n_urls, triples)),
                                         (abase, a_urls[0], script_for(a_urls, triples, {"Cookie": cookie})), args)
            finally:
                d.stop()  # type: ignore[attr-defined]
        finally:
            nginx.terminate()
            nginx.wait(10)
        report("local disk: ranged reads and seeks", "nginx 1.22 (sendfile)", n_res,
               f"appliance ({args.workers} workers)", a_res, "target >= 0.7")
        if not args.no_s3:
            s3_bench(tmp, videos, triples, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def s3_bench(tmp: Path, videos: list[Path], triples: list[tuple[int, int, int]], args: argparse.Namespace) -> None:
    """The same load against the bucket directly (presigned URLs) and through the appliance."""
    from minio import Minio

    weed = start_weed(tmp / "weed")
    try:
        client = Minio(weed.endpoint, access_key="bench", secret_key="bench-secret", secure=False)
        bucket = f"bench-{secrets.token_hex(4)}"
        client.make_bucket(bucket)
        etags = []
        for i, v in enumerate(videos, start=1):
            client.fput_object(bucket, f"videos/{i}/video.mp4", str(v), content_type="video/mp4")
            etags.append(str(client.stat_object(bucket, f"videos/{i}/video.mp4").etag))
        urls = [client.presigned_get_object(bucket, f"videos/{i}/video.mp4", expires=timedelta(hours=1))
                for i in range(1, len(videos) + 1)]
        sbase = f"http://{weed.endpoint}"
        paths = [u[len(sbase):] for u in urls]
        check(sbase, paths[0], None, videos[0].read_bytes())
        s3_tmp = tmp / "s3app"
        s3_tmp.mkdir()
        toml = (f"[media]\nbackend = \"s3\"\ns3_endpoint = \"{weed.endpoint}\"\ns3_bucket = \"{bucket}\"\n"
                "s3_access_key = \"bench\"\ns3_secret_key = \"bench-secret\"\ns3_secure = false\n")
        d, abase, cookie = start_appliance(s3_tmp, videos, args.workers, toml)
        try:
            register(d, videos, etags)
            check(abase, "/videos/1/stream", cookie, videos[0].read_bytes())
            a_urls = [f"/videos/{i}/stream" for i in range(1, len(videos) + 1)]
            s_res, a_res = alternate((sbase, paths[0], script_for(paths, triples)),
                                     (abase, a_urls[0], script_for(a_urls, triples, {"Cookie": cookie})), args)
        finally:
            d.stop()  # type: ignore[attr-defined]
        report("S3 (SeaweedFS): ranged reads and seeks", "S3 direct (presigned)", s_res,
               f"appliance via S3 ({args.workers} workers)", a_res,
               "(no target: every byte crosses the appliance; media.stream_mode = \"redirect\" gives the bucket's own)")
    finally:
        weed.stop()


if __name__ == "__main__":
    raise SystemExit(main())
