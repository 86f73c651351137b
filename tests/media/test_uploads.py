"""Uploads: streamed to staging, type from ffprobe, limits, sanitised names, cleanup on failure."""

from __future__ import annotations

from typing import Any

from appliance.keys import DB
from tests.media.conftest import MediaEnv
from tests.media.test_streaming import upload


async def _nothing_left(env: MediaEnv) -> None:
    assert await env.svc.storage.list_keys("videos/") == []
    assert [p.name for p in env.svc.staging.iterdir()] == []
    resp = await env.client.get("/api/v1/videos", headers=env.h("admin"))
    assert (await resp.json())["meta"]["total"] == 0


async def test_upload_is_stored_and_playable(media_env: MediaEnv, sample_bytes: bytes) -> None:
    resp = await upload(media_env, sample_bytes, filename="../../etc/My Lecture.mp4")
    assert resp.status == 201
    video = (await resp.json())["data"]
    assert video["availability"] == "available"
    assert video["source_kind"] == "upload"
    assert video["title"] == "My Lecture"
    assert video["size_bytes"] == len(sample_bytes)
    assert video["width"] == 320
    row = await media_env.client.app[DB].fetchone("SELECT original_filename FROM videos WHERE id = ?",
                                                  (video["id"],))
    assert row["original_filename"] == "My Lecture.mp4"
    resp = await media_env.client.get(f"/videos/{video['id']}/stream", headers=media_env.h("admin"))
    assert resp.status == 404  # hidden until made visible
    resp = await media_env.client.get(f"/videos/{video['id']}/stream", headers=media_env.h("sysadmin"))
    assert await resp.read() == sample_bytes
    assert [p.name for p in media_env.svc.staging.iterdir()] == []


async def test_bad_files_are_rejected(media_env_factory: Any, sample_bytes: bytes) -> None:
    env = await media_env_factory("disk")
    bad = {"text-renamed.mp4": b"<html>hello</html>\n" * 500, "truncated.mp4": sample_bytes[: len(sample_bytes) - 4000],
           "half.mp4": sample_bytes[: len(sample_bytes) // 2]}
    for name, data in bad.items():
        resp = await upload(env, data, filename=name)
        assert resp.status == 422, name
        body = await resp.json()
        assert body["error"]["code"] == "not_a_video"
    await _nothing_left(env)


async def test_upload_over_limit_is_413(media_env_factory: Any) -> None:
    env = await media_env_factory("disk", upload_max_mb=1)
    resp = await upload(env, b"\0" * (1024 * 1024 + 300 * 1024))
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "payload_too_large"
    await _nothing_left(env)


async def test_upload_needs_a_file(media_env_factory: Any) -> None:
    env = await media_env_factory("disk")
    resp = await env.client.post("/api/v1/videos/upload", json={"file": "x"}, headers=env.h("admin"))
    assert resp.status == 400
    resp = await upload(env, b"", filename="empty.mp4")
    assert resp.status == 400
    resp = await upload(env, b"x" * 10, who="learner")
    assert resp.status == 403


async def test_database_failure_removes_the_stored_file(media_env: MediaEnv, sample_bytes: bytes) -> None:
    """Runs on disk and S3: the stored objects are removed when the final row update fails."""
    db = media_env.client.app[DB]
    # a real SQLite failure at the last write of the upload (marking the row available)
    await db.execute("CREATE TRIGGER fail_store BEFORE UPDATE OF storage_key ON videos"
                     " BEGIN SELECT RAISE(ABORT, 'simulated disk failure'); END")
    resp = await upload(media_env, sample_bytes)
    assert resp.status == 500
    await _nothing_left(media_env)
    await db.execute("DROP TRIGGER fail_store")
    resp = await upload(media_env, sample_bytes)
    assert resp.status == 201
