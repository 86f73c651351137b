"""Video holes found by the LAN review: deletion across facilities, the SSE feed after deactivation, inflated
watch time, and the player page's headers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from appliance.keys import DB
from tests.media.conftest import MediaEnv


async def _video(env: MediaEnv, *, facilities: tuple[int, ...] = (), added_by: int | None = None,
                 duration_s: float = 2.0) -> int:
    """An available video row (its file is not needed for these checks)."""
    db = env.client.app[DB]
    res = await db.execute(
        "INSERT INTO videos (source_kind, title, availability, storage_key, duration_s, added_by, size_bytes)"
        " VALUES ('upload', 'Short clip', 'available', 'videos/x/video.mp4', ?, ?, 10)", (duration_s, added_by))
    vid = int(res.lastrowid or 0)
    for fid in facilities:
        await db.execute("INSERT INTO video_facilities (video_id, facility_id) VALUES (?, ?)", (vid, fid))
    return vid


async def _facility(env: MediaEnv) -> int:
    res = await env.client.app[DB].execute("INSERT INTO facilities (name, timezone) VALUES ('Other unit', 'UTC')")
    return int(res.lastrowid or 0)


async def test_department_admin_deletes_only_its_facilities_videos(media_env_factory: Any) -> None:
    env = await media_env_factory("disk")
    other = await _facility(env)
    await env.user("dept", role="department_admin")  # homed in facility 1 only
    outsider = await env.make_user(env.client, role="facility_admin", facility_id=other)
    theirs = await _video(env, facilities=(other,))
    shared = await _video(env, facilities=(1, other))
    unpublished_elsewhere = await _video(env, added_by=outsider["id"])
    mine = await _video(env, facilities=(1,))
    for vid in (theirs, shared, unpublished_elsewhere):
        resp = await env.client.delete(f"/api/v1/videos/{vid}", headers=env.h("dept"))
        assert resp.status == 403, vid
    assert await env.client.app[DB].fetchval("SELECT COUNT(*) FROM videos") == 4
    assert (await env.client.delete(f"/api/v1/videos/{mine}", headers=env.h("dept"))).status == 200
    assert (await env.client.delete(f"/api/v1/videos/{shared}", headers=env.h("sysadmin"))).status == 200


async def test_sse_feed_ends_when_the_admin_is_deactivated(media_env_factory: Any) -> None:
    env = await media_env_factory("disk")
    await env.user("second", role="facility_admin")
    feed = await env.client.get("/api/v1/videos/events", headers=env.h("second"))
    assert feed.status == 200
    await env.client.app[DB].execute("UPDATE users SET deactivated_at = '2026-01-01T00:00:00Z' WHERE id = ?",
                                     (env.users["second"]["id"],))
    await env.svc.hub.emit({"type": "state", "video_id": 999, "availability": "available"})
    started = asyncio.get_running_loop().time()
    body = await asyncio.wait_for(feed.content.read(), 5)  # read() returns only when the server ends the feed
    assert asyncio.get_running_loop().time() - started < 2.5
    assert b"999" not in body  # no event reached a deactivated admin


async def test_watch_time_is_capped_by_duration_and_wall_clock(media_env_factory: Any) -> None:
    env = await media_env_factory("disk")
    vid = await _video(env, facilities=(1,), duration_s=2.0)
    answers = []
    for _ in range(10):
        resp = await env.client.put(f"/api/v1/videos/{vid}/position", headers=env.h("learner"),
                                    json={"position_s": 1, "watched_s": 600})
        assert resp.status == 200
        answers.append((await resp.json())["data"])
    total = await env.client.app[DB].fetchval(
        "SELECT SUM(seconds) FROM video_watch_activity WHERE user_id = ?", (env.users["learner"]["id"],))
    # what the reports add up to first: the duration before the first report plus the wall-clock time
    # since (well under a second here) plus one second of jitter allowance that never adds up
    assert total < 4.5
    credited = [a["credited_s"] for a in answers]
    assert total == pytest.approx(sum(credited), abs=0.01)
    assert credited[0] <= 2.0  # per report at most the duration


async def test_player_page_sends_the_shell_security_headers(media_env_factory: Any) -> None:
    env = await media_env_factory("disk")
    vid = await _video(env, facilities=(1,))
    resp = await env.client.get(f"/videos/{vid}", headers=env.h("learner"))
    assert resp.status == 200
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Cache-Control"] == "no-store"
