"""yt-dlp as a supervised subprocess: resolve playlists, download with progress, read the info JSON."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from appliance.media.blocking import media_blocking
from appliance.media.egress import REFUSAL_MARKER
from appliance.media.procs import ProcessTimeout, run_supervised
from appliance.media.settings import DEFAULT_FORMAT

_PROGRESS = "APPL-PROGRESS "
# yt-dlp messages that mean the source could not be reached at all (uplink down), not that it failed
_UNREACHABLE = re.compile(
    r"Connection refused|Network is unreachable|No route to host|Name or service not known|"
    r"Temporary failure in name resolution|nodename nor servname|getaddrinfo failed|No address associated",
    re.IGNORECASE,
)
_HTTP_STATUS = re.compile(r"HTTP Error (\d{3})")
# The egress proxy's reason phrase, as yt-dlp ("HTTP Error 403: ...", "Tunnel connection failed: 403 ...") and
# ffmpeg ("HTTP error 403 ...") print it; the reason itself never contains quotes, parentheses or newlines.
_REFUSED = re.compile(re.escape(REFUSAL_MARKER) + r"([^'\"()\r\n]+)")
# Formats yt-dlp fetches over HTTP, i.e. through the egress proxy. The others (rtmp, rtsp, mms, websockets)
# are handed to rtmpdump, ffmpeg or mpv, which would connect on their own, past the proxy.
PROXIED_PROTOCOLS = "[protocol~='^(https?|m3u8(_native)?|http_dash_segments(_generator)?|ism|f4m|mhtml)$']"


class FailureKind(StrEnum):
    """Why a yt-dlp run failed; decides whether an attempt is spent."""

    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    NOT_FOUND = "not_found"
    UNSUPPORTED = "unsupported"
    NOT_A_VIDEO = "not_a_video"
    REFUSED = "refused"  # the egress proxy refused a target (internal address or odd port)
    FAILED = "failed"


class YtdlpError(Exception):
    """A yt-dlp run failed."""

    def __init__(self, kind: FailureKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class YtdlpOptions:
    """How yt-dlp is run (from [media])."""

    format: str = DEFAULT_FORMAT
    cookies_file: Path | None = None
    timeout_s: float = 3600.0
    socket_timeout_s: float = 30.0
    max_filesize_mb: int = 0
    proxy: str | None = None  # the egress proxy URL; set by the feature once the proxy listens
    executable: tuple[str, ...] = (sys.executable, "-m", "yt_dlp")

    def base_argv(self) -> list[str]:
        """Flags every run shares: no user config, no cache, no calling home."""
        argv = [*self.executable, "--ignore-config", "--no-cache-dir", "--no-color", "--newline",
                "--socket-timeout", f"{self.socket_timeout_s:g}",
                # HLS and DASH through yt-dlp's own HTTP stack; where it still hands a stream to ffmpeg
                # (live, unsupported HLS features) ffmpeg finds the proxy in http_proxy (see env)
                "--downloader", "native"]
        if self.cookies_file is not None:
            argv += ["--cookies", str(self.cookies_file)]
        return argv

    def env(self) -> dict[str, str]:
        """The environment of yt-dlp and its ffmpeg: the daemon's, with the egress proxy as the only proxy.

        The proxy goes in the environment, not in argv: any local user can read a command line
        (/proc/<pid>/cmdline), only the appliance's own user its environment. yt-dlp takes http_proxy,
        https_proxy and all_proxy as if given with --proxy, and ffmpeg reads http_proxy. Every other
        *_proxy variable is dropped: ffmpeg honours no_proxy over http_proxy, so an inherited no_proxy
        would let it connect past the egress proxy.
        """
        if not self.proxy:
            # fail closed: a run without the proxy could reach any address a redirect points at
            raise RuntimeError("yt-dlp runs only through the egress proxy (YtdlpOptions.proxy is not set)")
        # REQUEST_METHOD makes Python's urllib ignore HTTP_PROXY (a CGI safeguard); it has no business here
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy") and k != "REQUEST_METHOD"}
        env.update({"http_proxy": self.proxy, "https_proxy": self.proxy, "all_proxy": self.proxy})
        return env


@dataclass(frozen=True)
class Progress:
    """One progress report from yt-dlp."""

    percent: float | None
    speed_bps: float | None
    eta_s: int | None
    downloaded_bytes: int
    total_bytes: int | None


@dataclass(frozen=True)
class Entry:
    """One video of a (possibly playlist) URL."""

    url: str
    title: str | None
    external_id: str | None
    extractor: str | None


@dataclass(frozen=True)
class Downloaded:
    """Files a successful download left in its work folder."""

    video: Path
    info: dict[str, Any]
    info_path: Path
    thumbnail: Path | None


def parse_progress(line: str) -> Progress | None:
    """Turn a `--progress-template` line into a Progress (None for other lines)."""
    if not line.startswith(_PROGRESS):
        return None
    try:
        data = json.loads(line[len(_PROGRESS):])
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    total = data.get("total_bytes") or data.get("total_bytes_estimate")
    done = int(data.get("downloaded_bytes") or 0)
    percent = data.get("_percent")
    if percent is None and total:
        percent = 100.0 * done / float(total)
    speed, eta = data.get("speed"), data.get("eta")
    return Progress(
        percent=round(float(percent), 1) if percent is not None else None,
        speed_bps=float(speed) if speed is not None else None,
        eta_s=int(eta) if eta is not None else None,
        downloaded_bytes=done,
        total_bytes=int(total) if total else None,
    )


def classify(stderr: str) -> YtdlpError:
    """Map yt-dlp's error output to a failure kind with a short reason."""
    errors = [ln for ln in stderr.splitlines() if ln.startswith("ERROR:")]
    reason = (errors[-1] if errors else (stderr.strip().splitlines() or ["yt-dlp failed"])[-1])[:300]
    refused = _REFUSED.search(stderr)
    if refused:
        return YtdlpError(FailureKind.REFUSED, f"refused: {refused.group(1).strip()}")
    if _UNREACHABLE.search(stderr):
        return YtdlpError(FailureKind.UNREACHABLE, reason)
    if re.search(r"timed out", stderr, re.IGNORECASE):
        return YtdlpError(FailureKind.TIMEOUT, reason)
    status = _HTTP_STATUS.search(stderr)
    if status and status.group(1) in {"404", "410"}:
        return YtdlpError(FailureKind.NOT_FOUND, reason)
    if "Postprocessing:" in stderr or "Invalid data found when processing input" in stderr:
        # ffmpeg could not remux what was fetched: the source is not a video
        return YtdlpError(FailureKind.NOT_A_VIDEO, reason)
    if "Unsupported URL" in stderr or "no video formats" in stderr.lower():
        return YtdlpError(FailureKind.UNSUPPORTED, reason)
    return YtdlpError(FailureKind.FAILED, reason)


async def resolve(url: str, opts: YtdlpOptions) -> list[Entry]:
    """List the videos behind a URL (one entry, or one per playlist item) without downloading."""
    argv = [*opts.base_argv(), "-J", "--flat-playlist", "--no-playlist-reverse", "--", url]
    try:
        res = await run_supervised(argv, timeout_s=min(opts.timeout_s, 300.0), env=opts.env())
    except ProcessTimeout as exc:
        raise YtdlpError(FailureKind.TIMEOUT, str(exc)) from exc
    if res.returncode != 0:
        raise classify(res.stderr.decode("utf-8", "replace"))
    try:
        info = json.loads(res.stdout)
    except ValueError as exc:
        raise YtdlpError(FailureKind.FAILED, "yt-dlp printed no JSON") from exc
    if info.get("_type") == "playlist":
        out = []
        page = info.get("webpage_url")
        for e in info.get("entries") or []:
            # flat entries point at their own page; embedded ones (several <video> on one page) at the media
            if e.get("_type") in {"url", "url_transparent"} or not e.get("webpage_url") or e["webpage_url"] == page:
                target = e.get("url")
            else:
                target = e["webpage_url"]
            if isinstance(target, str):
                out.append(Entry(target, e.get("title"), e.get("id"), e.get("ie_key") or e.get("extractor")))
        return out
    return [Entry(url, info.get("title"), info.get("id"), info.get("extractor_key") or info.get("extractor"))]


async def download(
    url: str, workdir: Path, opts: YtdlpOptions, on_progress: Callable[[Progress], Awaitable[None]] | None = None,
) -> Downloaded:
    """Download one video into `workdir` as mp4 with its info JSON and thumbnail."""
    await media_blocking(lambda: workdir.mkdir(parents=True, exist_ok=True))
    argv = [*opts.base_argv(), "--no-playlist", "--no-part", "--no-mtime", "--restrict-filenames",
            "-f", f"({opts.format}){PROXIED_PROTOCOLS}", "--merge-output-format", "mp4", "--remux-video", "mp4",
            "--write-info-json", "--write-thumbnail", "--convert-thumbnails", "jpg",
            "--progress-template", f"download:{_PROGRESS}%(progress)j",
            "-P", str(workdir), "-o", "video.%(ext)s", "-o", "thumbnail:thumbnail.%(ext)s",
            "-o", "infojson:video"]
    if opts.max_filesize_mb:
        argv += ["--max-filesize", f"{opts.max_filesize_mb}M"]
    argv += ["--", url]

    async def line(text: str) -> None:
        progress = parse_progress(text)
        if progress is not None and on_progress is not None:
            await on_progress(progress)

    try:
        res = await run_supervised(argv, timeout_s=opts.timeout_s, on_stdout_line=line, env=opts.env())
    except ProcessTimeout as exc:
        raise YtdlpError(FailureKind.TIMEOUT, str(exc)) from exc
    if res.returncode != 0:
        raise classify(res.stderr.decode("utf-8", "replace"))
    return await media_blocking(_collect, workdir)


def _collect(workdir: Path) -> Downloaded:
    video = workdir / "video.mp4"
    info_path = workdir / "video.info.json"
    if not video.is_file():
        raise YtdlpError(FailureKind.FAILED, "yt-dlp finished without an mp4 (file over the size limit?)")
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    thumb = workdir / "thumbnail.jpg"
    return Downloaded(video=video, info=info, info_path=info_path, thumbnail=thumb if thumb.is_file() else None)
