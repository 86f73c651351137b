"""Check that a file really is a playable video, from its own bytes, with ffprobe."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from appliance.media.blocking import media_blocking
from appliance.media.procs import ProcessTimeout, run_supervised

# ffprobe format names we accept for browser playback (mp4/mov family and WebM/Matroska)
_FORMATS = {"mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm"}


class NotAVideo(Exception):
    """The file is not a complete video in a supported container; the message says why."""


@dataclass(frozen=True)
class ProbeResult:
    """What ffprobe found."""

    format_name: str
    duration_s: float
    width: int
    height: int
    video_codec: str


async def probe_video(path: Path, *, ffprobe: str = "ffprobe", timeout_s: float = 30.0) -> ProbeResult:
    """Run ffprobe on the file; raise NotAVideo unless it has a decodable video stream and a duration."""
    argv = [ffprobe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)]
    try:
        res = await run_supervised(argv, timeout_s=timeout_s)
    except ProcessTimeout as exc:
        raise NotAVideo("ffprobe timed out on the file") from exc
    if res.returncode != 0:
        reason = res.stderr.decode("utf-8", "replace").strip().splitlines()
        raise NotAVideo(f"not a readable video: {reason[-1][:200] if reason else 'ffprobe failed'}")
    try:
        info = json.loads(res.stdout)
    except ValueError as exc:
        raise NotAVideo("ffprobe gave no readable answer") from exc
    fmt = info.get("format") or {}
    names = set(str(fmt.get("format_name", "")).split(","))
    if not names & _FORMATS:
        raise NotAVideo(f"unsupported container {fmt.get('format_name')!r}")
    videos = [s for s in info.get("streams", []) if s.get("codec_type") == "video"
              and not (s.get("disposition") or {}).get("attached_pic")]
    if not videos:
        raise NotAVideo("the file has no video stream")
    try:
        duration = float(fmt.get("duration") or videos[0].get("duration") or 0)
    except ValueError:
        duration = 0.0
    if duration <= 0:
        raise NotAVideo("the video has no duration (truncated?)")
    v = videos[0]
    return ProbeResult(
        format_name=str(fmt.get("format_name")), duration_s=duration, width=int(v.get("width") or 0),
        height=int(v.get("height") or 0), video_codec=str(v.get("codec_name") or ""),
    )


def check_mp4_complete(path: Path) -> None:
    """Walk the top-level MP4 boxes; raise NotAVideo if one runs past the end (a truncated file).

    Blocking (a few seeks); cheaper than decoding the whole file on a small device.
    """
    size = path.stat().st_size
    pos = 0
    with path.open("rb") as fh:
        while pos < size:
            fh.seek(pos)
            header = fh.read(16)
            if len(header) < 8:
                raise NotAVideo("the video is truncated (partial box header)")
            box = int.from_bytes(header[:4], "big")
            if box == 1:
                if len(header) < 16:
                    raise NotAVideo("the video is truncated (partial box header)")
                box = int.from_bytes(header[8:16], "big")
            elif box == 0:  # box runs to the end of the file
                return
            if box < 8:
                raise NotAVideo("the video has a corrupt box")
            pos += box
    if pos != size:
        raise NotAVideo(f"the video is truncated ({size} of {pos} bytes)")


async def make_thumbnail(video: Path, dest: Path, *, at_s: float, ffmpeg: str = "ffmpeg",
                         timeout_s: float = 60.0) -> bool:
    """Grab one frame as a JPEG thumbnail; return False if ffmpeg could not."""
    argv = [ffmpeg, "-v", "error", "-y", "-ss", f"{max(0.0, at_s):.2f}", "-i", str(video), "-frames:v", "1",
            "-vf", "scale=480:-2", "-q:v", "4", str(dest)]
    try:
        res = await run_supervised(argv, timeout_s=timeout_s)
    except ProcessTimeout:
        return False
    return res.returncode == 0 and await media_blocking(lambda: dest.is_file() and dest.stat().st_size > 0)
