"""Type checks of files from their own bytes with ffprobe."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from appliance.media.probe import NotAVideo, check_mp4_complete, make_thumbnail, probe_video
from appliance.media.procs import run_supervised
from tests.media.realservers import make_sample_mp4


async def _ffmpeg(*args: str) -> None:
    res = await run_supervised(["ffmpeg", "-v", "error", "-y", *args], timeout_s=60)
    assert res.returncode == 0, res.stderr


async def test_real_mp4_passes(sample_mp4: Path) -> None:
    res = await probe_video(sample_mp4)
    assert (res.width, res.height, res.video_codec) == (320, 240, "h264")
    assert 4.5 < res.duration_s < 5.5
    check_mp4_complete(sample_mp4)


async def test_text_renamed_mp4_rejected(tmp_path: Path) -> None:
    fake = tmp_path / "lecture.mp4"
    fake.write_text("<html>not a video</html>\n" * 100)
    with pytest.raises(NotAVideo):
        await probe_video(fake)


async def test_audio_only_rejected(tmp_path: Path) -> None:
    audio = tmp_path / "a.mp4"
    await _ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(audio))
    with pytest.raises(NotAVideo, match="no video stream"):
        await probe_video(audio)


async def test_truncated_mp4_rejected(tmp_path: Path) -> None:
    # moov at the end (no faststart): truncation loses the index and ffprobe refuses it
    tail_moov = tmp_path / "tail.mp4"
    await _ffmpeg("-f", "lavfi", "-i", "testsrc=duration=2:size=160x120:rate=10", "-c:v", "libx264",
                  "-preset", "ultrafast", str(tail_moov))
    cut = tmp_path / "cut1.mp4"
    cut.write_bytes(tail_moov.read_bytes()[: tail_moov.stat().st_size // 2])
    with pytest.raises(NotAVideo):
        await probe_video(cut)


def test_truncated_faststart_mp4_caught_by_box_walk(sample_mp4: Path, tmp_path: Path) -> None:
    # moov first: ffprobe still reads the header, so the box walk is what catches the missing media data
    cut = tmp_path / "cut2.mp4"
    cut.write_bytes(sample_mp4.read_bytes()[: sample_mp4.stat().st_size - 5000])
    with pytest.raises(NotAVideo, match="truncated"):
        check_mp4_complete(cut)


async def test_thumbnail(sample_mp4: Path, tmp_path: Path) -> None:
    thumb = tmp_path / "t.jpg"
    assert await make_thumbnail(sample_mp4, thumb, at_s=1.0)
    assert thumb.read_bytes()[:2] == b"\xff\xd8"


def test_make_sample_is_reusable(tmp_path: Path) -> None:
    assert shutil.which("ffprobe")
    assert make_sample_mp4(tmp_path / "x.mp4", seconds=1).stat().st_size > 1000
