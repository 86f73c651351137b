"""The download queue is durable: a daemon killed mid-download (SIGKILL) leaves a job JetStream redelivers."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest

from appliance.auth.passwords import hash_password
from appliance.auth.usernames import username_key
from tests.daemon import Daemon, start_daemon, write_config
from tests.media.realservers import VideoSite

MEDIA_TOML = """
[media]
allowed_networks = ["127.0.0.0/8"]
job_ack_wait_s = 3
retry_delay_s = 1
min_free_disk_mb = 1
"""


def _login(d: Daemon) -> dict[str, str]:
    db = sqlite3.connect(d.data_dir / "appliance.db")
    with db:
        db.execute("INSERT OR IGNORE INTO users (uuid, username, username_key, facility_id, role, password_hash)"
                   " VALUES (?, 'vadmin', ?, 1, 'facility_admin', ?)",
                   (str(uuid.uuid4()), username_key("vadmin"), hash_password("video admin pw 42")))
    db.close()
    req = urllib.request.Request(f"{d.url}/api/v1/auth/login", method="POST",
                                 data=json.dumps({"username": "vadmin", "password": "video admin pw 42"}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        cookie = resp.headers["Set-Cookie"].split(";", 1)[0]
        csrf = json.loads(resp.read())["data"]["csrf_token"]
    return {"Cookie": cookie, "X-CSRF-Token": csrf, "Content-Type": "application/json"}


def _video(d: Daemon, headers: dict[str, str], vid: int) -> dict[str, object]:
    req = urllib.request.Request(f"{d.url}/api/v1/videos/{vid}", headers=headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return dict(json.loads(resp.read())["data"])


async def _wait(d: Daemon, headers: dict[str, str], vid: int, states: set[str], timeout: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        video = await asyncio.to_thread(_video, d, headers, vid)
        if video["availability"] in states:
            return video
        assert time.monotonic() < deadline, video
        await asyncio.sleep(0.3)


def _ytdlp_running(url: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if url in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


@pytest.mark.slow
async def test_job_survives_a_killed_daemon(tmp_path: Path, video_site: VideoSite, gate: asyncio.Event) -> None:
    config = write_config(tmp_path, MEDIA_TOML)
    d = await asyncio.to_thread(start_daemon, tmp_path, config=config)
    url = video_site.url("gated.html")
    try:
        headers = _login(d)
        req = urllib.request.Request(f"{d.url}/api/v1/videos", method="POST", headers=headers,
                                     data=json.dumps({"urls": [url]}).encode())
        with urllib.request.urlopen(req, timeout=10) as resp:
            vid = json.loads(resp.read())["data"][0]["id"]
        await _wait(d, headers, vid, {"processing"}, 60)  # yt-dlp is stuck at the gate
        assert _ytdlp_running(url)
        await asyncio.to_thread(d.kill)  # SIGKILL: no cleanup, the job is neither acked nor handed back
        deadline = time.monotonic() + 15
        while _ytdlp_running(url) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert _ytdlp_running(url) == []  # yt-dlp died with its parent
    finally:
        await asyncio.to_thread(d.stop)
    gate.set()
    d = await asyncio.to_thread(start_daemon, tmp_path, config=config)
    try:
        headers = _login(d)
        video = await _wait(d, headers, vid, {"available", "error"}, 90)
        assert video["availability"] == "available"
        assert video["attempts"] == 2  # the killed attempt counted, the redelivered one stored the file
        assert (tmp_path / "content" / "videos" / str(vid) / "video.mp4").is_file()
    finally:
        await asyncio.to_thread(d.stop)


@pytest.mark.slow
async def test_shutdown_kills_ytdlp_and_hands_the_job_back(media_env_factory: Any, video_site: VideoSite,
                                                         gate: asyncio.Event) -> None:
    env = await media_env_factory("disk", job_ack_wait_s=60)
    url = video_site.url("gated.html")
    [entry] = await env.add(url)
    await env.wait_for(entry["id"], {"processing"})
    deadline = time.monotonic() + 30
    while not _ytdlp_running(url) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert _ytdlp_running(url)
    await env.client.close()  # graceful stop: yt-dlp is killed, the attempt given back, the job nak'ed
    assert _ytdlp_running(url) == []
    gate.set()
    # the same data directory again: the job comes back within seconds, not after the 60 s ack wait
    env = await media_env_factory("disk", job_ack_wait_s=60)
    video = await env.wait_for(entry["id"], {"available", "error"}, timeout=40)
    assert video["availability"] == "available"
    assert video["attempts"] == 1
    outcomes = [a["outcome"] for a in video["download_attempts"]]
    assert outcomes == ["waiting", "succeeded"]


@pytest.mark.slow
async def test_concurrent_downloads_are_bounded(media_env_factory: Any, video_site: VideoSite,
                                                gate: asyncio.Event) -> None:
    env = await media_env_factory("disk", max_concurrent_downloads=1)
    (video_site.root / "gated2.html").write_text(
        (video_site.root / "gated.html").read_text().replace("lecture.mp4", "part2.mp4"))
    first, second = await env.add(video_site.url("gated.html"), video_site.url("gated2.html"))
    running = await env.wait_for(first["id"], {"processing"}, timeout=30)
    assert running["availability"] == "processing"
    await asyncio.sleep(3)  # the only slot is taken: the second job stays queued
    resp = await env.client.get(f"/api/v1/videos/{second['id']}", headers=env.h("admin"))
    assert (await resp.json())["data"]["availability"] == "pending"
    assert (await resp.json())["data"]["attempts"] == 0
    gate.set()
    for entry in (first, second):
        video = await env.wait_for(entry["id"], {"available", "error"}, timeout=60)
        assert video["availability"] == "available"
