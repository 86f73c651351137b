"""yt-dlp runs against a local web site: the generic extraction path a real site uses."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from appliance.media.egress import EgressProxy
from appliance.media.probe import probe_video
from appliance.media.ssrf import parse_networks
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


@pytest.fixture
async def proxy() -> AsyncIterator[EgressProxy]:
    """The egress proxy every yt-dlp run goes through, with loopback allowed."""
    egress = EgressProxy(parse_networks(["127.0.0.0/8"]), connect_timeout_s=2)
    await egress.start()
    try:
        yield egress
    finally:
        await egress.close()


@pytest.fixture
def opts(proxy: EgressProxy) -> YtdlpOptions:
    """yt-dlp options for the tests, through the proxy."""
    return YtdlpOptions(timeout_s=60, socket_timeout_s=5, proxy=proxy.url)


async def test_download_with_progress_info_and_thumbnail(video_site: VideoSite, tmp_path: Path, opts: YtdlpOptions,
                                                         sample_bytes: bytes) -> None:
    seen: list[Progress] = []

    async def on_progress(p: Progress) -> None:
        seen.append(p)

    got = await download(video_site.url("lecture.html"), tmp_path / "work", opts, on_progress)
    assert got.video.read_bytes() == sample_bytes
    assert got.info["title"].startswith("Lecture one")
    assert got.info["description"] == "A test lecture"
    assert json.loads(got.info_path.read_text())["webpage_url"] == video_site.url("lecture.html")
    assert seen
    assert seen[-1].percent == 100.0
    assert seen[-1].downloaded_bytes == len(sample_bytes)
    assert (await probe_video(got.video)).duration_s > 4


async def test_playlist_page_resolves_to_entries(video_site: VideoSite, opts: YtdlpOptions) -> None:
    entries = await resolve(video_site.url("playlist.html"), opts)
    assert len(entries) == 2
    assert len({e.url for e in entries}) == 2


async def test_single_page_resolves_to_itself(video_site: VideoSite, opts: YtdlpOptions) -> None:
    entries = await resolve(video_site.url("lecture.html"), opts)
    assert [e.url for e in entries] == [video_site.url("lecture.html")]
    assert entries[0].external_id


async def test_404_is_not_found(video_site: VideoSite, tmp_path: Path, opts: YtdlpOptions) -> None:
    with pytest.raises(YtdlpError) as err:
        await download(video_site.url("missing.html"), tmp_path / "w", opts)
    assert err.value.kind is FailureKind.NOT_FOUND
    assert "404" in str(err.value)


async def test_hanging_url_times_out_and_is_killed(video_site: VideoSite, tmp_path: Path,
                                                   opts: YtdlpOptions) -> None:
    opts = dataclasses.replace(opts, timeout_s=4, socket_timeout_s=30)
    with pytest.raises(YtdlpError) as err:
        await download(video_site.url("hang/page.html"), tmp_path / "w", opts)
    assert err.value.kind is FailureKind.TIMEOUT


async def test_closed_port_is_unreachable(tmp_path: Path, opts: YtdlpOptions) -> None:
    # the proxy's 502 says "Connection refused": offline, so the job waits instead of spending attempts
    with pytest.raises(YtdlpError) as err:
        await download(f"http://127.0.0.1:{free_port()}/lecture.html", tmp_path / "w", opts)
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
    assert classify("ERROR: [generic] x: Unable to download webpage: HTTP Error 502: Connection refused "
                    "(127.0.0.1:1)").kind is FailureKind.UNREACHABLE
    assert classify("ERROR: HTTP Error 502: Name or service not known (host 'a.invalid' does not resolve)"
                    ).kind is FailureKind.UNREACHABLE


def test_classify_refusals_as_yt_dlp_and_ffmpeg_print_them() -> None:
    reason = "address 10.0.0.7 is loopback, link-local or private; add its range to egress.allowed_networks"
    printed = [
        # a plain-http page or file (the proxy answered the absolute-form request)
        f"ERROR: [generic] redir: Unable to download webpage: HTTP Error 403: Refused by appliance egress: "
        f"{reason} (caused by <HTTPError 403: Refused by appliance egress: {reason}>)",
        # an https target (the CONNECT was answered 403)
        f"ERROR: [generic] x: Unable to download webpage: ('Unable to connect to proxy', OSError('Tunnel "
        f"connection failed: 403 Refused by appliance egress: {reason}')) (caused by ProxyError(...))",
        # ffmpeg, when yt-dlp hands it a stream
        f"[http @ 0x55f5be2270c0] HTTP error 403 Refused by appliance egress: {reason}\n"
        "ERROR: ffmpeg exited with code 1",
    ]
    for text in printed:
        err = classify(text)
        assert err.kind is FailureKind.REFUSED, text
        assert str(err) == f"refused: {reason}"


def test_runs_without_the_proxy_are_refused() -> None:
    with pytest.raises(RuntimeError, match="egress proxy"):
        YtdlpOptions().env()


def test_the_proxy_is_passed_in_the_environment_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("HTTPS_PROXY", "http://elsewhere:3128")
    opts = YtdlpOptions(proxy="http://appliance:secret@127.0.0.1:1")
    env = opts.env()
    assert {k: v for k, v in env.items() if k.lower().endswith("_proxy")} == {
        "http_proxy": opts.proxy, "https_proxy": opts.proxy, "all_proxy": opts.proxy}
    assert not any("secret" in arg for arg in opts.base_argv())  # other local users can read a command line
