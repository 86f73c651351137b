"""Learner side: listing, resume positions, watch activity, and bad input on these routes."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.keys import DB
from tests.media.conftest import MediaEnv
from tests.media.test_streaming import upload


@pytest.fixture
async def env_video(media_env_factory: Any, sample_bytes: bytes) -> tuple[MediaEnv, int]:
    """Disk backend with one visible video."""
    env = await media_env_factory("disk")
    resp = await upload(env, sample_bytes)
    vid = (await resp.json())["data"]["id"]
    await env.client.put(f"/api/v1/videos/{vid}/visibility", json={"facility_ids": [1]}, headers=env.h("admin"))
    return env, vid


async def test_position_is_saved_and_watch_time_recorded(env_video: tuple[MediaEnv, int]) -> None:
    env, vid = env_video
    url = f"/api/v1/videos/{vid}/position"
    resp = await env.client.get(url, headers=env.h("learner"))
    assert (await resp.json())["data"] == {"video_id": vid, "position_s": 0.0, "completed": False}
    for pos, watched in ((2.5, 2.5), (3.75, 1.25)):
        resp = await env.client.put(url, json={"position_s": pos, "watched_s": watched}, headers=env.h("learner"))
        assert resp.status == 200
    resp = await env.client.get(url, headers=env.h("learner"))
    assert (await resp.json())["data"]["position_s"] == 3.75
    row = await env.client.app[DB].fetchone(
        "SELECT seconds, facility_id FROM video_watch_activity WHERE user_id = ? AND video_id = ?",
        (env.users["learner"]["id"], vid))
    assert (row["seconds"], row["facility_id"]) == (3.75, 1)
    resp = await env.client.put(url, json={"position_s": 5.0, "completed": True}, headers=env.h("learner"))
    assert (await resp.json())["data"]["completed"] is True
    # another learner has its own position
    other = await env.user("other", role="learner")
    resp = await env.client.get(url, headers=other)
    assert (await resp.json())["data"]["position_s"] == 0.0


BAD_POSITIONS = [{}, {"position_s": -1}, {"position_s": "12"}, {"position_s": True}, {"position_s": 1e12},
                 {"position_s": 1, "watched_s": 10_000}, {"position_s": 1, "completed": "yes"}]


async def test_bad_positions(env_video: tuple[MediaEnv, int]) -> None:
    env, vid = env_video
    for body in BAD_POSITIONS:
        resp = await env.client.put(f"/api/v1/videos/{vid}/position", json=body, headers=env.h("learner"))
        assert resp.status == 400, body
        assert (await resp.json())["error"]["code"] == "invalid_body"
    resp = await env.client.put(f"/api/v1/videos/{vid}/position", data=b'{"position_s": NaN}',
                                headers={**env.h("learner"), "Content-Type": "application/json"})
    assert resp.status == 400
    count = await env.client.app[DB].fetchval("SELECT COUNT(*) FROM video_positions")
    assert count == 0


async def test_learner_listing_and_filters(env_video: tuple[MediaEnv, int]) -> None:
    env, vid = env_video
    resp = await env.client.get("/api/v1/videos", headers=env.h("learner"))
    body = await resp.json()
    assert [v["id"] for v in body["data"]] == [vid]
    assert body["meta"]["total"] == 1
    resp = await env.client.get("/api/v1/videos?availability=error", headers=env.h("learner"))
    assert (await resp.json())["meta"]["total"] == 0
    resp = await env.client.get("/api/v1/videos?facility_id=1&availability=available", headers=env.h("admin"))
    assert (await resp.json())["meta"]["total"] == 1
    resp = await env.client.get(f"/api/v1/videos/{vid}", headers=env.h("learner"))
    assert "download_attempts" not in (await resp.json())["data"]


async def test_bad_list_parameters(env_video: tuple[MediaEnv, int]) -> None:
    env, _ = env_video
    for query, param in [("availability=bogus", "availability"), ("facility_id=x", "facility_id"),
                         ("page=0", "page"), ("per_page=1000", "per_page")]:
        resp = await env.client.get(f"/api/v1/videos?{query}", headers=env.h("admin"))
        assert resp.status == 400, query
        body = await resp.json()
        assert body["error"]["code"] == "invalid_parameter"
        assert body["error"]["details"]["parameter"] == param


async def test_bad_visibility(env_video: tuple[MediaEnv, int]) -> None:
    env, vid = env_video
    for ids in (None, "1", [0], ["1"], [True], [9999]):
        resp = await env.client.put(f"/api/v1/videos/{vid}/visibility", json={"facility_ids": ids},
                                    headers=env.h("sysadmin"))
        assert resp.status == 400, ids
    resp = await env.client.get(f"/api/v1/videos/{vid}", headers=env.h("admin"))
    assert (await resp.json())["data"]["facility_ids"] == [1]  # unchanged


async def test_delete(env_video: tuple[MediaEnv, int]) -> None:
    env, vid = env_video
    assert (await env.client.delete(f"/api/v1/videos/{vid}", headers=env.h("admin"))).status == 403
    resp = await env.client.delete(f"/api/v1/videos/{vid}", headers=env.h("sysadmin"))
    assert resp.status == 200
    assert await env.svc.storage.list_keys("videos/") == []
    assert (await env.client.get(f"/videos/{vid}/stream", headers=env.h("sysadmin"))).status == 404
    assert (await env.client.delete(f"/api/v1/videos/{vid}", headers=env.h("sysadmin"))).status == 404
