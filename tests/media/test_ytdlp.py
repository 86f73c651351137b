"""yt-dlp runs against a local web site: the generic extraction path a real site uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.media.probe import probe_video
from appliance.media.ytdlp import (
    FailureKind,
    Progress,
    YtdlpError,
    YtdlpOptions,
    classify,
    download,
    parse_progress,
    resolve,
)
from tests.media.realservers import VideoSite, free_port

OPTS = YtdlpOptions(timeout_s=60, socket_timeout_s=5)


async def test_download_with_progress_info_and_thumbnail(video_site: VideoSite, tmp_path: Path,
                                                         sample_bytes: bytes) -> None:
    seen: list[Progress] = []

    async def on_progress(p: Progress) -> None:
        seen.append(p)

    got = await download(video_site.url("lecture.html"), tmp_path / "work", OPTS, on_progress)
    assert got.video.read_bytes() == sample_bytes
    assert got.info["title"].startswith("Lecture one")
    assert got.info["description"] == "A test lecture"
    assert json.loads(got.info_path.read_text())["webpage_url"] == video_site.url("lecture.html")
    assert seen
    assert seen[-1].percent == 100.0
    assert seen[-1].downloaded_bytes == len(sample_bytes)
    assert (await probe_video(got.video)).duration_s > 4


async def test_playlist_page_resolves_to_entries(video_site: VideoSite) -> None:
    entries = await resolve(video_site.url("playlist.html"), OPTS)
    assert len(entries) == 2
    assert len({e.url for e in entries}) == 2


async def test_single_page_resolves_to_itself(video_site: VideoSite) -> None:
    entries = await resolve(video_site.url("lecture.html"), OPTS)
    assert [e.url for e in entries] == [video_site.url("lecture.html")]
    assert entries[0].external_id


async def test_404_is_not_found(video_site: VideoSite, tmp_path: Path) -> None:
    with pytest.raises(YtdlpError) as err:
        await download(video_site.url("missing.html"), tmp_path / "w", OPTS)
    assert err.value.kind is FailureKind.NOT_FOUND
    assert "404" in str(err.value)


async def test_hanging_url_times_out_and_is_killed(video_site: VideoSite, tmp_path: Path) -> None:
    opts = YtdlpOptions(timeout_s=4, socket_timeout_s=30)
    with pytest.raises(YtdlpError) as err:
        await download(video_site.url("hang/page.html"), tmp_path / "w", opts)
    assert err.value.kind is FailureKind.TIMEOUT


async def test_closed_port_is_unreachable(tmp_path: Path) -> None:
    with pytest.raises(YtdlpError) as err:
        await download(f"http://127.0.0.1:{free_port()}/lecture.html", tmp_path / "w", OPTS)
    assert err.value.kind is FailureKind.UNREACHABLE


def test_progress_line_parsing() -> None:
    line = ('APPL-PROGRESS {"status": "downloading", "downloaded_bytes": 50, "total_bytes": 200, "eta": 3, '
            '"speed": 1000.5, "_percent": 25.0}')
    assert parse_progress(line) == Progress(25.0, 1000.5, 3, 50, 200)
    assert parse_progress("[download] something") is None
    assert parse_progress("APPL-PROGRESS {broken") is None
    est = parse_progress(
        'APPL-PROGRESS {"downloaded_bytes": 10, "total_bytes_estimate": 40, "speed": null, "eta": null}'
    )
    assert est == Progress(25.0, None, None, 10, 40)


def test_classify() -> None:
    assert classify("ERROR: Unsupported URL: http://x").kind is FailureKind.UNSUPPORTED
    assert classify("ERROR: [Errno 111] Connection refused").kind is FailureKind.UNREACHABLE
    assert classify("ERROR: something else").kind is FailureKind.FAILED
    assert classify("ERROR: Postprocessing: Stream #0:0 -> #0:0 (copy)").kind is FailureKind.NOT_A_VIDEO
