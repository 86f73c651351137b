"""Orphan sweeper, `appliance video reindex|add|sweep`, and the SSE progress feed."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from appliance.keys import CONFIG, DB
from appliance.media import cli
from appliance.media.feature import _requeue_unqueued
from appliance.media.maintenance import reindex, sweep
from appliance.media.storage import video_key
from tests.media.conftest import MediaEnv
from tests.media.realservers import VideoSite
from tests.media.test_streaming import upload


async def test_sweeper_removes_orphans_only(media_env: MediaEnv, sample_bytes: bytes, tmp_path: Path) -> None:
    env = media_env
    resp = await upload(env, sample_bytes)
    kept = (await resp.json())["data"]["id"]
    orphan = tmp_path / "orphan"
    orphan.write_bytes(b"left over from a crash")
    await env.svc.storage.put_file(video_key(9999), orphan, "video/mp4")
    (env.svc.staging / "job-77-dead").mkdir()
    removed = await sweep(env.svc)
    assert removed == 2
    keys = [o.key for o in await env.svc.storage.list_keys("videos/")]
    assert video_key(9999) not in keys
    assert video_key(kept) in keys
    assert list(env.svc.staging.iterdir()) == []


async def test_reindex_rebuilds_rows_from_sidecars(media_env: MediaEnv, sample_bytes: bytes) -> None:
    env = media_env
    resp = await upload(env, sample_bytes, filename="Algebra.mp4")
    vid = (await resp.json())["data"]["id"]
    db = env.client.app[DB]
    await db.execute("DELETE FROM videos")
    report = await reindex(env.svc)
    assert (report.restored, report.updated, report.skipped) == (1, 0, [])
    row = await db.fetchone("SELECT * FROM videos WHERE id = ?", (vid,))
    assert (row["title"], row["availability"], row["size_bytes"]) == ("Algebra", "available", len(sample_bytes))
    assert row["thumbnail_key"] is not None
    report = await reindex(env.svc)
    assert (report.restored, report.updated) == (0, 1)


async def test_cli_add_reindex_and_sweep(media_env_factory: Any, video_site: VideoSite, capsys: Any) -> None:
    env = await media_env_factory("disk")
    config = env.client.app[CONFIG]
    rc = await cli.cmd_add(argparse.Namespace(urls=[video_site.url("lecture.html")]), config)
    assert rc == 0
    assert "queued: video 1" in capsys.readouterr().out
    rc = await cli.cmd_add(argparse.Namespace(urls=["http://169.254.169.254/x"]), config)
    assert rc == 2
    # the daemon's requeue loop picks up what the command inserted (run once here instead of waiting for it)
    await _requeue_unqueued(env.svc)
    video = await env.wait_for(1, {"available", "error"}, timeout=90)
    assert video["availability"] == "available"
    await env.client.app[DB].execute("DELETE FROM videos")
    assert await cli.cmd_reindex(argparse.Namespace(), config) == 0
    assert "restored 1" in capsys.readouterr().out
    assert await cli.cmd_sweep(argparse.Namespace(), config) == 0


async def test_sse_feed_shows_progress_and_states(media_env_factory: Any, video_site: VideoSite) -> None:
    env = await media_env_factory("disk")
    resp = await env.client.get("/api/v1/videos/events", headers=env.h("learner"))
    assert resp.status == 403
    feed = await env.client.get("/api/v1/videos/events", headers=env.h("admin"))
    assert feed.status == 200
    assert feed.headers["Content-Type"].startswith("text/event-stream")
    [entry] = await env.add(video_site.url("lecture.html"))
    events: list[dict[str, Any]] = []

    async def read() -> None:
        while True:
            line = (await feed.content.readline()).decode()
            if line.startswith("data: "):
                event = json.loads(line[6:])
                events.append(event)
                if event.get("type") == "state" and event["availability"] in ("available", "error"):
                    return

    await asyncio.wait_for(read(), 60)
    feed.close()
    states = [e["availability"] for e in events if e["type"] == "state"]
    assert states[0] == "pending"
    assert "processing" in states
    assert states[-1] == "available"
    progress = [e for e in events if e["type"] == "progress"]
    assert progress
    assert progress[-1]["percent"] == 100.0
    assert all(e["video_id"] == entry["id"] for e in events)


async def test_sse_head_sends_no_body_into_the_next_response(media_env_factory: Any) -> None:
    env = await media_env_factory("disk")
    for _ in range(3):  # the test client keeps the connection alive between these requests
        resp = await env.client.head("/api/v1/videos/events", headers=env.h("admin"))
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        resp = await env.client.get("/api/v1/videos", headers=env.h("admin"))
        assert resp.status == 200
