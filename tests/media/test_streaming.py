"""Playing: Range, 206/416, HEAD, ETag, thumbnail and access rules, on local disk and on S3."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.media.conftest import MediaEnv


async def upload(env: MediaEnv, data: bytes, filename: str = "lecture.mp4", who: str = "admin") -> Any:
    """Upload bytes as a multipart form and return the response."""
    form = aiohttp.FormData()
    form.add_field("file", data, filename=filename, content_type="application/octet-stream")
    return await env.client.post("/api/v1/videos/upload", data=form, headers=env.h(who))


@pytest.fixture
async def playable(media_env: MediaEnv, sample_bytes: bytes) -> tuple[MediaEnv, int]:
    """An uploaded video made visible in facility 1."""
    resp = await upload(media_env, sample_bytes)
    assert resp.status == 201, await resp.text()
    video_id = (await resp.json())["data"]["id"]
    resp = await media_env.client.put(f"/api/v1/videos/{video_id}/visibility", json={"facility_ids": [1]},
                                      headers=media_env.h("admin"))
    assert resp.status == 200
    return media_env, video_id


async def test_full_and_ranged_reads(playable: tuple[MediaEnv, int], sample_bytes: bytes) -> None:
    env, vid = playable
    url, h = f"/videos/{vid}/stream", env.h("learner")
    resp = await env.client.get(url, headers=h)
    assert resp.status == 200
    assert resp.headers["Accept-Ranges"] == "bytes"
    assert resp.headers["Content-Type"] == "video/mp4"
    assert int(resp.headers["Content-Length"]) == len(sample_bytes)
    etag = resp.headers["ETag"]
    assert await resp.read() == sample_bytes
    size = len(sample_bytes)
    for header, start, end in [("bytes=0-99", 0, 99), ("bytes=1000-", 1000, size - 1), ("bytes=-500", size - 500,
                                                                                          size - 1),
                               (f"bytes={size - 10}-{size + 100}", size - 10, size - 1)]:
        resp = await env.client.get(url, headers={**h, "Range": header})
        assert resp.status == 206, header
        assert resp.headers["Content-Range"] == f"bytes {start}-{end}/{size}"
        assert await resp.read() == sample_bytes[start:end + 1]
    # seeking around like a player does
    for offset in (size // 2, 17, size - 1):
        resp = await env.client.get(url, headers={**h, "Range": f"bytes={offset}-{offset}"})
        assert await resp.read() == sample_bytes[offset:offset + 1]
    resp = await env.client.get(url, headers={**h, "If-None-Match": etag})
    assert resp.status == 304
    resp = await env.client.get(url, headers={**h, "Range": "bytes=0-9", "If-Range": '"stale"'})
    assert resp.status == 200  # a changed validator means: the whole file


async def test_head(playable: tuple[MediaEnv, int], sample_bytes: bytes) -> None:
    env, vid = playable
    resp = await env.client.head(f"/videos/{vid}/stream", headers=env.h("learner"))
    assert resp.status == 200
    assert int(resp.headers["Content-Length"]) == len(sample_bytes)
    assert await resp.read() == b""
    resp = await env.client.head(f"/videos/{vid}/stream", headers={**env.h("learner"), "Range": "bytes=10-19"})
    assert resp.status == 206
    assert resp.headers["Content-Range"] == f"bytes 10-19/{len(sample_bytes)}"


async def test_bad_ranges_are_416(playable: tuple[MediaEnv, int], sample_bytes: bytes) -> None:
    env, vid = playable
    for header in ("bytes=999999999-", "bytes=5-1", "bytes=abc", "pages=0-1", "bytes=0-1,4-5", "bytes=-0", "bytes="):
        resp = await env.client.get(f"/videos/{vid}/stream", headers={**env.h("learner"), "Range": header})
        assert resp.status == 416, header
        assert resp.headers["Content-Range"] == f"bytes */{len(sample_bytes)}"
        assert (await resp.json())["error"]["code"] == "range_not_satisfiable"


async def test_access_rules(playable: tuple[MediaEnv, int], make_facility: Any) -> None:
    env, vid = playable
    url = f"/videos/{vid}/stream"
    assert (await env.client.get(url)).status == 401
    other = await make_facility(env.client)
    outsider = await env.user("outsider", role="learner", facility_id=other)
    assert (await env.client.get(url, headers=outsider)).status == 404
    assert (await env.client.get(f"/videos/{vid}/thumbnail", headers=outsider)).status == 404
    # hidden again: learners of facility 1 lose it, a system admin still plays it
    resp = await env.client.put(f"/api/v1/videos/{vid}/visibility", json={"facility_ids": []},
                                headers=env.h("admin"))
    assert resp.status == 200
    assert (await env.client.get(url, headers=env.h("learner"))).status == 404
    assert (await env.client.get(url, headers=env.h("sysadmin"))).status == 200
    resp = await env.client.get("/api/v1/videos", headers=env.h("learner"))
    assert (await resp.json())["meta"]["total"] == 0
    # a facility admin cannot publish into a facility it does not run
    resp = await env.client.put(f"/api/v1/videos/{vid}/visibility", json={"facility_ids": [other]},
                                headers=env.h("admin"))
    assert resp.status == 403
    resp = await env.client.put(f"/api/v1/videos/{vid}/visibility", json={"facility_ids": [other]},
                                headers=env.h("sysadmin"))
    assert resp.status == 200
    assert (await env.client.get(url, headers=outsider)).status == 200


async def test_thumbnail(playable: tuple[MediaEnv, int]) -> None:
    env, vid = playable
    resp = await env.client.get(f"/videos/{vid}/thumbnail", headers=env.h("learner"))
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "image/jpeg"
    assert (await resp.read())[:2] == b"\xff\xd8"


async def test_unknown_and_huge_ids(media_env: MediaEnv) -> None:
    for vid in ("424242", "99999999999999999999999"):
        resp = await media_env.client.get(f"/videos/{vid}/stream", headers=media_env.h("sysadmin"))
        assert resp.status == 404
        resp = await media_env.client.get(f"/api/v1/videos/{vid}", headers=media_env.h("sysadmin"))
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "not_found"


async def test_s3_presigned_redirect(media_env_factory: Any, sample_bytes: bytes) -> None:
    env = await media_env_factory("s3", stream_mode="redirect", presign_expiry_s=60)
    resp = await upload(env, sample_bytes)
    vid = (await resp.json())["data"]["id"]
    resp = await env.client.get(f"/videos/{vid}/stream", headers=env.h("sysadmin"), allow_redirects=False)
    assert resp.status == 307
    target = resp.headers["Location"]
    assert "X-Amz-Signature" in target
    assert "X-Amz-Expires=60" in target
    async with aiohttp.ClientSession() as http, http.get(target, headers={"Range": "bytes=100-199"}) as direct:
        assert direct.status == 206
        assert await direct.read() == sample_bytes[100:200]


async def test_a_file_cut_short_on_disk_ends_the_connection(media_env_factory: Any, sample_bytes: bytes) -> None:
    """The size announced in Content-Length no longer exists: the client must see an error, not wait forever."""
    env = await media_env_factory("disk")
    resp = await upload(env, sample_bytes)
    vid = (await resp.json())["data"]["id"]
    url, h = f"/videos/{vid}/stream", env.h("sysadmin")
    resp = await env.client.get(url, headers={**h, "Range": "bytes=0-9"})  # opens and caches the file
    assert await resp.read() == sample_bytes[:10]
    row = await env.svc.repo.get(vid)
    path = env.svc.storage.local_path(str(row["storage_key"]))
    assert path is not None
    half = len(sample_bytes) // 2
    with path.open("r+b") as fh:
        fh.truncate(half)

    async def read_past_the_end() -> bytes:
        cut = await env.client.get(url, headers={**h, "Range": f"bytes={half - 10}-"})
        return await cut.read()

    with pytest.raises((aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError)):
        await asyncio.wait_for(read_past_the_end(), 10)
    resp = await env.client.get(url, headers={**h, "Range": "bytes=0-9"})  # the next request is served again
    assert resp.status == 206
