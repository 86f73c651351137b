"""Downloads end to end: API → JetStream job → yt-dlp from a local site → storage → available."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import nats.js.errors
import pytest
from aiohttp import web

from appliance.keys import BUS, DB
from appliance.media.storage import info_key, thumbnail_key, video_key
from tests.media.conftest import MediaEnv
from tests.media.realservers import VideoSite, free_port, site_app


async def test_download_becomes_available_and_plays(media_env: MediaEnv, video_site: VideoSite,
                                                    sample_bytes: bytes) -> None:
    env = media_env
    [entry] = await env.add(video_site.url("lecture.html"))
    assert entry["created"] is True
    video = await env.wait_for(entry["id"], {"available", "error"})
    assert video["availability"] == "available", video
    assert video["title"].startswith("Lecture one")
    assert video["description"] == "A test lecture"
    assert video["size_bytes"] == len(sample_bytes)
    assert video["duration_s"] == pytest.approx(5, abs=0.6)
    assert video["extractor"]
    assert video["has_thumbnail"] is True
    assert [a["outcome"] for a in video["download_attempts"]] == ["succeeded"]
    assert await env.svc.storage.stat(info_key(entry["id"])) is not None
    assert await env.svc.storage.stat(thumbnail_key(entry["id"])) is not None
    stored = await env.svc.storage.stat(video_key(entry["id"]))
    assert stored is not None
    assert stored.size == len(sample_bytes)
    # the same URL is not downloaded twice
    [again] = await env.add(video_site.url("lecture.html"))
    assert again == {"id": entry["id"], "url": video_site.url("lecture.html"), "created": False}
    # visible to the learner's facility, the learner can play it
    resp = await env.client.put(f"/api/v1/videos/{entry['id']}/visibility", json={"facility_ids": [1]},
                                headers=env.h("admin"))
    assert resp.status == 200
    resp = await env.client.get(f"/videos/{entry['id']}/stream", headers=env.h("learner"))
    assert resp.status == 200
    assert await resp.read() == sample_bytes
    resp = await env.client.get(f"/videos/{entry['id']}/thumbnail", headers=env.h("learner"))
    assert resp.status == 200
    assert (await resp.read())[:2] == b"\xff\xd8"
    # the domain event for webhooks is on the EVENTS stream, and the metrics count the download
    event = None
    for _ in range(100):  # recorded with the video, relayed to JetStream a moment later
        with contextlib.suppress(nats.js.errors.NotFoundError):
            event = await env.client.app[BUS].js.get_last_msg("EVENTS", "appliance.events.video.available")
            break
        await asyncio.sleep(0.1)
    assert event is not None
    body = json.loads(event.data)
    assert body["type"] == "video.available" and body["data"]["video"]["id"] == entry["id"]
    metrics = await (await env.client.get("/metrics")).text()
    assert 'appliance_media_downloads_total{outcome="succeeded"}' in metrics


@pytest.mark.slow
async def test_playlist_url_becomes_one_video_per_entry(media_env_factory: Any, video_site: VideoSite) -> None:
    env = await media_env_factory("disk")
    [entry] = await env.add(video_site.url("playlist.html"))
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        resp = await env.client.get("/api/v1/videos?availability=available", headers=env.h("admin"))
        body = await resp.json()
        if body["meta"]["total"] == 2 or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.3)
    assert body["meta"]["total"] == 2, body
    urls = sorted(v["source_url"] for v in body["data"])
    assert urls == [video_site.url("lecture.mp4"), video_site.url("part2.mp4")]
    resp = await env.client.get(f"/api/v1/videos/{entry['id']}", headers=env.h("admin"))
    assert resp.status == 404  # the playlist placeholder was replaced by its entries


@pytest.mark.slow
async def test_404_url_retries_then_error_and_manual_retry(media_env_factory: Any, video_site: VideoSite) -> None:
    env = await media_env_factory("disk", retry_delay_s=1, max_attempts=2)
    [entry] = await env.add(video_site.url("missing-page.html"))
    video = await env.wait_for(entry["id"], {"error", "available"}, timeout=90)
    assert video["availability"] == "error"
    assert video["attempts"] == 2
    assert "404" in video["last_error"]
    assert [a["outcome"] for a in video["download_attempts"]] == ["failed"] * 2
    assert {a["failure_kind"] for a in video["download_attempts"]} == {"not_found"}
    # the page appears; a manual retry fetches it with a fresh budget
    (video_site.root / "missing-page.html").write_text((video_site.root / "lecture.html").read_text())
    resp = await env.client.post(f"/api/v1/videos/{entry['id']}/retry", headers=env.h("admin"))
    assert resp.status == 202
    video = await env.wait_for(entry["id"], {"available", "error"})
    assert video["availability"] == "available"
    assert video["attempts"] == 1
    resp = await env.client.post(f"/api/v1/videos/{entry['id']}/retry", headers=env.h("admin"))
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "conflict"


@pytest.mark.slow
async def test_uplink_down_waits_without_spending_attempts(media_env_factory: Any, tmp_path: Path,
                                                           sample_mp4: Path) -> None:
    env = await media_env_factory("disk", uplink_wait_s=1, max_attempts=2)
    port = free_port()
    url = f"http://127.0.0.1:{port}/lecture.html"
    [entry] = await env.add(url)
    await asyncio.sleep(4)  # several uplink checks fail meanwhile
    video = await env.wait_for(entry["id"], {"pending"})
    assert video["attempts"] == 0
    assert "uplink" in video["last_error"]
    waits = [a for a in video["download_attempts"] if a["outcome"] == "waiting"]
    assert len(waits) >= 2
    # the link comes back: the site answers on that port and the video arrives
    from tests.media.realservers import build_site

    build_site(tmp_path / "late", sample_mp4)
    runner = web.AppRunner(site_app(tmp_path / "late", asyncio.Event()))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        video = await env.wait_for(entry["id"], {"available", "error"})
        assert video["availability"] == "available"
        assert video["attempts"] == 1
    finally:
        await runner.cleanup()


async def test_hanging_url_times_out(media_env_factory: Any, video_site: VideoSite) -> None:
    env = await media_env_factory("disk", download_timeout_s=5, socket_timeout_s=60, max_attempts=1)
    [entry] = await env.add(video_site.url("hanging.html"))
    video = await env.wait_for(entry["id"], {"error", "available"}, timeout=60)
    assert video["availability"] == "error"
    assert "timed out" in video["last_error"]
    assert video["download_attempts"][-1]["failure_kind"] == "timeout"
    assert await env.svc.storage.list_keys("videos/") == []  # nothing half-written


async def test_non_video_download_is_an_error_at_once(media_env_factory: Any, video_site: VideoSite) -> None:
    env = await media_env_factory("disk")
    [entry] = await env.add(video_site.url("notvideo.html"))
    video = await env.wait_for(entry["id"], {"error", "available"})
    assert video["availability"] == "error"
    assert video["attempts"] == 1  # retrying cannot turn it into a video
    assert video["download_attempts"][-1]["failure_kind"] == "not_a_video"
    assert await env.svc.storage.list_keys("videos/") == []


async def test_s3_unreachable_during_download(media_env_factory: Any, video_site: VideoSite) -> None:
    dead = f"127.0.0.1:{free_port()}"
    env = await media_env_factory(backend="s3", s3_endpoint=dead, s3_secure=False, s3_timeout_s=1,
                                  s3_access_key="a", s3_secret_key="b", max_attempts=1, retry_delay_s=1)
    [entry] = await env.add(video_site.url("lecture.html"))
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        video = await env.wait_for(entry["id"], {"pending", "error", "available"})
        if len([a for a in video["download_attempts"] if a["outcome"] == "waiting"]) >= 2:
            break
        assert asyncio.get_running_loop().time() < deadline, video
        await asyncio.sleep(0.2)
    assert video["availability"] == "pending"  # waits for the storage, spends nothing
    assert video["attempts"] == 0
    assert {a["failure_kind"] for a in video["download_attempts"]} == {"storage"}
    assert "S3 unreachable" in video["last_error"]
    assert list(env.svc.staging.iterdir()) == []  # nothing was downloaded


REFUSED = ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.5/v", "http://192.168.1.1/",
           "ftp://example.com/x", "http://[::1]/x", "not a url", "http://[fe80::1]/v", "http://0.0.0.0/"]


async def test_refused_urls_add_nothing(media_env_factory: Any, video_site: VideoSite) -> None:
    env = await media_env_factory("disk")
    for url in REFUSED:
        resp = await env.client.post("/api/v1/videos", json={"urls": [video_site.url("lecture.html"), url]},
                                     headers=env.h("admin"))
        assert resp.status == 400, url
        body = await resp.json()
        assert body["error"]["code"] == "url_refused"
        assert body["error"]["details"]["urls"][0]["index"] == 1
    resp = await env.client.get("/api/v1/videos", headers=env.h("admin"))
    assert (await resp.json())["meta"]["total"] == 0


async def test_loopback_refused_unless_allowed(media_env_factory: Any, video_site: VideoSite) -> None:
    env = await media_env_factory("disk", allowed_networks=[])
    resp = await env.client.post("/api/v1/videos", json={"urls": [video_site.url("lecture.html")]},
                                 headers=env.h("admin"))
    assert resp.status == 400
    assert "allowed_networks" in (await resp.json())["error"]["details"]["urls"][0]["reason"]


async def test_public_host_on_an_odd_port_refused(media_env_factory: Any) -> None:
    env = await media_env_factory("disk")
    # an address literal: no DNS and, being refused, no connection either
    resp = await env.client.post("/api/v1/videos", json={"urls": ["http://93.184.216.34:25/v.mp4"]},
                                 headers=env.h("admin"))
    assert resp.status == 400
    assert "port 25 is not 80 or 443" in (await resp.json())["error"]["details"]["urls"][0]["reason"]


async def test_bad_add_bodies(media_env_factory: Any) -> None:
    env = await media_env_factory("disk")
    for body in ({}, {"urls": "http://x"}, {"urls": []}, {"urls": [1]}, {"urls": ["a"] * 51}):
        resp = await env.client.post("/api/v1/videos", json=body, headers=env.h("admin"))
        assert resp.status == 400, body
        assert (await resp.json())["error"]["code"] == "invalid_urls"
    resp = await env.client.post("/api/v1/videos", data=b"{not json", headers=env.h("admin"))
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "invalid_json"


async def test_learner_cannot_add(media_env_factory: Any, video_site: VideoSite) -> None:
    env = await media_env_factory("disk")
    resp = await env.client.post("/api/v1/videos", json={"urls": [video_site.url("lecture.html")]},
                                 headers=env.h("learner"))
    assert resp.status == 403
    resp = await env.client.post("/api/v1/videos", json={"urls": [video_site.url("lecture.html")]})
    assert resp.status == 401


async def test_quota_refuses_new_downloads(media_env_factory: Any, video_site: VideoSite) -> None:
    env = await media_env_factory("disk", min_free_disk_mb=10_000_000)
    resp = await env.client.post("/api/v1/videos", json={"urls": [video_site.url("lecture.html")]},
                                 headers=env.h("admin"))
    assert resp.status == 507
    body = await resp.json()
    assert body["error"]["code"] == "insufficient_storage"
    assert "min_free_disk_mb" in body["error"]["message"]


async def test_unresolvable_host_is_accepted_and_waits(media_env_factory: Any) -> None:
    env = await media_env_factory("disk", uplink_wait_s=1)
    [entry] = await env.add("http://lectures.invalid/algebra.html")  # offline: DNS fails, that is not a refusal
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        video = await env.wait_for(entry["id"], {"pending"})
        # row and attempts log are two reads: wait until both show the first wait
        if video["last_error"] and any(a["outcome"] == "waiting" for a in video["download_attempts"]):
            break
        assert asyncio.get_running_loop().time() < deadline, video
        await asyncio.sleep(0.2)
    assert video["attempts"] == 0
    assert "uplink" in video["last_error"]


async def test_quota_reached_during_download_fails_cleanly(media_env_factory: Any, video_site: VideoSite) -> None:
    env = await media_env_factory("disk", cache_quota_mb=1, max_attempts=1)
    [entry] = await env.add(video_site.url("lecture.html"))
    # meanwhile the cache fills up (another video of 2 MiB was stored)
    await env.client.app[DB].execute(
        "INSERT INTO videos (source_kind, title, availability, storage_key, size_bytes) VALUES"
        " ('upload', 'big', 'available', 'videos/999/video.mp4', ?)", (2 * 1024 * 1024,))
    video = await env.wait_for(entry["id"], {"error", "available"})
    assert video["availability"] == "error"
    assert video["download_attempts"][-1]["failure_kind"] == "no_space"
    assert "cache_quota_mb=1" in video["last_error"]
    assert await env.svc.storage.list_keys(f"videos/{entry['id']}/") == []
    assert list(env.svc.staging.iterdir()) == []
