"""Real components for the media tests: a SeaweedFS S3 server and a local video web site."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

WEED = Path(sys.executable).parent / "weed"


def free_port() -> int:
    """A currently free loopback TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_sample_mp4(path: Path, *, seconds: int = 5, size: str = "320x240") -> Path:
    """Encode a small H.264/AAC test video with ffmpeg."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=duration={seconds}:size={size}:rate=15",
         "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:v", "libx264", "-preset", "ultrafast",
         "-c:a", "aac", "-shortest", "-movflags", "+faststart", str(path)],
        check=True, timeout=120,
    )
    return path


@dataclass
class S3Server:
    """A running `weed server -s3` on loopback."""

    endpoint: str
    proc: subprocess.Popen[bytes]
    workdir: Path

    def stop(self) -> None:
        """Stop the server and wait for it."""
        if self.proc.poll() is None:
            # weed's graceful SIGTERM path takes ~15 s; the test data is throw-away, so be brisk
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def _s3_ready(endpoint: str) -> bool:
    from minio import Minio

    client = Minio(endpoint, access_key="any", secret_key="anysecret", secure=False)
    try:
        client.list_buckets()
        return True
    except Exception:
        return False


def start_weed(workdir: Path, *, timeout: float = 90.0) -> S3Server:
    """Start SeaweedFS with its S3 gateway on free loopback ports and poll until S3 answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    # every port explicit: weed otherwise derives gRPC ports as port+10000 and binds fixed defaults
    s3, master, volume, filer, s3g, mg, vg, fg = (free_port() for _ in range(8))
    log = (workdir / "weed.log").open("wb")
    proc = subprocess.Popen(
        [str(WEED), "server", f"-dir={workdir}", "-s3", f"-s3.port={s3}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
         f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
         f"-s3.port.grpc={s3g}", f"-master.port.grpc={mg}", f"-volume.port.grpc={vg}", f"-filer.port.grpc={fg}",
         "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false", "-volume.max=0",
         "-master.volumeSizeLimitMB=64"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    server = S3Server(endpoint=f"127.0.0.1:{s3}", proc=proc, workdir=workdir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed exited: {(workdir / 'weed.log').read_text()[-2000:]}")
        if _s3_ready(server.endpoint):
            return server
        time.sleep(0.5)
    server.stop()
    raise RuntimeError("weed S3 did not become ready")


@contextlib.contextmanager
def weed_s3(workdir: Path) -> Iterator[S3Server]:
    """Context manager around `start_weed`."""
    server = start_weed(workdir)
    try:
        yield server
    finally:
        server.stop()


def build_site(root: Path, sample: Path) -> None:
    """Lay out the pages the video site serves."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(sample, root / "lecture.mp4")
    (root / "lecture.html").write_text(
        "<!doctype html><html><head><title>Lecture one</title>"
        '<meta property="og:description" content="A test lecture"></head>'
        '<body><video src="lecture.mp4" controls></video></body></html>'
    )
    (root / "notvideo.txt").write_bytes(b"this is not a video\n" * 200)
    (root / "notvideo.html").write_text(
        '<!doctype html><html><head><title>Fake</title></head><body><video src="notvideo.txt"></video></body></html>'
    )
    (root / "gone.html").write_text(
        '<!doctype html><html><head><title>Gone</title></head><body><video src="missing.mp4"></video></body></html>'
    )
    (root / "gated.html").write_text(
        "<!doctype html><html><head><title>Gated</title></head>"
        '<body><video src="/gate/lecture.mp4"></video></body></html>'
    )
    (root / "hanging.html").write_text(
        '<!doctype html><html><head><title>Slow</title></head><body><video src="/hang/v.mp4"></video></body></html>'
    )
    add_playlist_page(root)


def site_app(root: Path, hang: asyncio.Event) -> web.Application:
    """The local video web site: a page with a <video>, routes that 404, hang, or serve a non-video."""

    async def page(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = root / name
        if not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    async def hanging(request: web.Request) -> web.StreamResponse:
        await hang.wait()
        raise web.HTTPNotFound()

    async def gated(request: web.Request) -> web.StreamResponse:
        # held until the test opens the gate (`hang` set), then served normally
        await hang.wait()
        return web.FileResponse(root / request.match_info["name"])

    app = web.Application()
    app.router.add_get("/hang/{tail:.*}", hanging)
    app.router.add_get("/gate/{name}", gated)
    app.router.add_get("/{name}", page)
    return app


@dataclass
class VideoSite:
    """A running local video web site."""

    base: str
    root: Path
    port: int

    def url(self, path: str) -> str:
        """Absolute URL of a path on the site."""
        return f"{self.base}/{path.lstrip('/')}"


def add_playlist_page(root: Path) -> None:
    """A page with two <video> elements: yt-dlp's generic extractor sees a playlist."""
    shutil.copy(root / "lecture.mp4", root / "part2.mp4")
    (root / "playlist.html").write_text(
        "<!doctype html><html><head><title>Course</title></head><body>"
        '<video src="lecture.mp4"></video><video src="part2.mp4"></video></body></html>'
    )
