"""Real components for the media tests: a SeaweedFS S3 server and a local video web site."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
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
    """A running `weed server -s3` on loopback; it can be killed, frozen and restarted on the same ports and data."""

    endpoint: str
    proc: subprocess.Popen[bytes]
    workdir: Path
    args: list[str] = field(default_factory=list)

    def stop(self) -> None:
        """Stop the server and wait for it."""
        if self.proc.poll() is None:
            self.resume()  # a frozen process cannot act on SIGTERM
            # weed's graceful SIGTERM path takes ~15 s; the test data is throw-away, so be brisk
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def kill(self) -> None:
        """An outage: SIGKILL, no goodbye to open connections."""
        if self.proc.poll() is None:
            self.resume()
            self.proc.kill()
            self.proc.wait(timeout=5)

    def pause(self) -> None:
        """A hung server: SIGSTOP (the kernel still accepts connections, nothing answers)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Undo `pause`."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)

    def restart(self, *, timeout: float = 60.0) -> None:
        """Start weed again on the same ports and data folder; wait until S3 answers and every volume is back."""
        self.stop()
        volumes = len(list(self.workdir.glob("*.dat")))
        self.proc = _spawn(self.args, self.workdir)
        deadline = time.monotonic() + timeout
        _wait_ready(self, timeout)
        # S3 answers before the volume server has re-registered its volumes with the master; until then
        # reads of existing objects fail ("volume not found")
        while self._master_volumes() < volumes:
            if time.monotonic() > deadline:
                raise RuntimeError(f"weed has {self._master_volumes()} of {volumes} volumes back")
            time.sleep(0.1)

    def _master_volumes(self) -> int:
        master = next(a.split("=", 1)[1] for a in self.args if a.startswith("-master.port="))
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{master}/dir/status", timeout=2) as resp:
                topology = json.load(resp)["Topology"]
        except (OSError, ValueError, KeyError):
            return 0
        return sum(int(node.get("Volumes", 0)) for dc in topology.get("DataCenters") or []
                   for rack in dc.get("Racks") or [] for node in rack.get("DataNodes") or [])


def _s3_ready(endpoint: str) -> bool:
    import urllib3
    from minio import Minio

    # no retries: minio's default client backs off for ~6 s on a refused connection, most of a start
    http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=1, read=2), retries=False)
    client = Minio(endpoint, access_key="any", secret_key="anysecret", secure=False, http_client=http)
    try:
        client.list_buckets()
        return True
    except Exception:
        return False
    finally:
        http.clear()


def _spawn(args: list[str], workdir: Path) -> subprocess.Popen[bytes]:
    with (workdir / "weed.log").open("ab") as log:
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_ready(server: S3Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"weed exited: {(server.workdir / 'weed.log').read_text()[-2000:]}")
        if _s3_ready(server.endpoint):
            return
        time.sleep(0.2)
    server.stop()
    raise RuntimeError("weed S3 did not become ready")


def _quiet_port() -> int:
    """A free loopback port below the kernel's ephemeral range.

    free_port() hands out a port from the range the kernel also uses for bind(0) and for the local end of
    every outgoing connection, so in a busy run another socket can take it before weed binds it (or while a
    killed weed is down, before it is restarted on the same ports).
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(200):
        port = random.randint(10000, low - 1)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


def start_weed(workdir: Path, *, timeout: float = 90.0) -> S3Server:
    """Start a fresh SeaweedFS with its S3 gateway on free loopback ports and poll until S3 answers."""
    for tries_left in (2, 1, 0):
        try:
            return _start_weed(workdir, timeout)
        except RuntimeError:
            log = workdir / "weed.log"
            # another process took one of the ports between the check and weed's bind: start afresh on others
            if not tries_left or "address already in use" not in (log.read_text() if log.exists() else ""):
                raise
            shutil.rmtree(workdir)
    raise AssertionError("unreachable")


def _start_weed(workdir: Path, timeout: float) -> S3Server:
    workdir.mkdir(parents=True, exist_ok=True)
    # every port explicit: weed otherwise derives gRPC ports as port+10000 and binds fixed defaults
    s3, master, volume, filer, s3g, mg, vg, fg = (_quiet_port() for _ in range(8))
    args = [str(WEED), "server", f"-dir={workdir}", "-s3", f"-s3.port={s3}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
            f"-s3.port.grpc={s3g}", f"-master.port.grpc={mg}", f"-volume.port.grpc={vg}", f"-filer.port.grpc={fg}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false", "-volume.max=0",
            "-master.volumeSizeLimitMB=64",
            # a restarted single master otherwise waits out the default 10 s election before it leads again
            "-master.electionTimeout=1s"]
    server = S3Server(endpoint=f"127.0.0.1:{s3}", proc=_spawn(args, workdir), workdir=workdir, args=args)
    _wait_ready(server, timeout)
    return server


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


class ThrottledRelay:
    """A loopback TCP relay in front of a server: passes at most `rate_bps` bytes/s towards it and counts them.

    It makes an upload to S3 last long enough for a test to stop the server in the middle of it.
    """

    def __init__(self, upstream_port: int, rate_bps: int) -> None:
        self.upstream_port = upstream_port
        self.rate_bps = rate_bps
        self.bytes_up = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._next_send = 0.0

    @property
    def endpoint(self) -> str:
        """host:port clients should use."""
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening and drop every relayed connection."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._handlers:
            # closed transports end the pipes; wait so no handler is left for the loop to cancel at teardown
            await asyncio.wait(list(self._handlers), timeout=5)
        if self._server is not None:
            await self._server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()  # the server is down: the client sees its connection dropped
            self._writers.discard(writer)
            return
        self._writers.add(up_writer)
        await asyncio.gather(self._pipe(reader, up_writer, throttle=True), self._pipe(up_reader, writer),
                             return_exceptions=True)
        self._writers.discard(writer)
        self._writers.discard(up_writer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                    throttle: bool = False) -> None:
        loop = asyncio.get_running_loop()
        try:
            while data := await reader.read(64 * 1024):
                if throttle:
                    # one budget shared by all connections (minio uploads parts in parallel)
                    now = loop.time()
                    slot = max(self._next_send, now)
                    self._next_send = slot + len(data) / self.rate_bps
                    await asyncio.sleep(slot - now)
                    self.bytes_up += len(data)
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()


def make_large_mp4(path: Path, *, seconds: int = 3) -> Path:
    """An mp4 of about 7 MiB a second (noise barely compresses): big enough for a multipart upload of a few parts."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=duration={seconds}:size=640x360:rate=25",
         "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-vf", "noise=alls=100:allf=t",
         "-c:v", "libx264", "-preset", "ultrafast", "-qp", "18", "-c:a", "aac", "-shortest",
         "-movflags", "+faststart", str(path)],
        check=True, timeout=120,
    )
    return path
