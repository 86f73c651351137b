"""S3 going away and coming back, with a real SeaweedFS that the tests kill, freeze and restart.

Each test runs its own `weed server -s3` (the session one stays up for everyone else); a throttled TCP relay in
front of it stretches an upload to a few seconds so the server can be killed in the middle of it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from minio import Minio

from appliance.keys import DB
from appliance.media.maintenance import sweep
from appliance.media.storage import StorageUnavailable, info_key, video_key, video_prefix
from appliance.media.storage.s3 import S3Storage
from tests.media.conftest import MediaEnv, make_s3_storage
from tests.media.realservers import S3Server, ThrottledRelay, VideoSite, make_large_mp4, start_weed
from tests.media.test_streaming import upload

MiB = 1024 * 1024


@pytest.fixture
def weed(tmp_path: Path) -> Iterator[S3Server]:
    """A SeaweedFS of this test's own, free to be killed and restarted (same ports, same data)."""
    server = start_weed(tmp_path / "weed")
    try:
        yield server
    finally:
        server.kill()  # throw-away data: no need for weed's slow graceful stop


@pytest.fixture
async def relay(weed: S3Server) -> AsyncIterator[ThrottledRelay]:
    """A relay to `weed` passing 6 MiB/s towards it: a 20 MiB upload takes about 3 s."""
    proxy = ThrottledRelay(int(weed.endpoint.rsplit(":", 1)[1]), 6 * MiB)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


def direct(server: S3Server) -> Minio:
    """A minio client straight to the server (not through the relay, whose loop a blocking call would stall)."""
    return Minio(server.endpoint, access_key="appliance", secret_key="appliance-secret", secure=False)


def unfinished_uploads(server: S3Server, bucket: str) -> list[tuple[str, str]]:
    """(key, upload id) of every multipart upload S3 still holds open (ListMultipartUploads)."""
    result = direct(server)._list_multipart_uploads(bucket)  # noqa: SLF001 - minio has no public call for it
    return [(u.object_name, str(u.upload_id)) for u in result.uploads]


async def wait_until(predicate: object, timeout: float, what: str) -> None:
    """Poll a callable until it is true."""
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def _read(store: S3Storage, key: str, start: int, length: int) -> bytes:
    return b"".join([chunk async for chunk in store.read_range(key, start, length)])


async def test_upload_cut_off_by_an_outage_leaves_no_upload_behind(weed: S3Server, relay: ThrottledRelay,
                                                                    tmp_path: Path) -> None:
    bucket = f"cut-{secrets.token_hex(5)}"
    store = make_s3_storage(relay.endpoint, bucket, part_size=5 * MiB, timeout_s=5.0)
    await store.start()
    try:
        payload = os.urandom(MiB) * 20  # four parts
        src = tmp_path / "video.mp4"
        src.write_bytes(payload)
        upload = asyncio.ensure_future(store.put_file(video_key(1), src, "video/mp4"))
        await wait_until(lambda: relay.bytes_up > 8 * MiB or upload.done(), 20, "the upload to get going")
        assert not upload.done()
        weed.kill()
        started = time.monotonic()
        with pytest.raises(StorageUnavailable):
            await upload
        assert time.monotonic() - started < 10
        assert src.exists()  # not consumed: the caller's staging clean-up removes it

        weed.restart()  # same ports, same data folder
        # minio's own abort could not reach S3: the upload is still open, and listed as a temporary name
        [(key, _upload_id)] = unfinished_uploads(weed, bucket)
        assert key == video_key(1)
        assert await store.stat(video_key(1)) is None  # nothing half-written became an object
        [tmp] = await store.list_keys("videos/")
        assert tmp.key.startswith("videos/1/.video.mp4.tmp-mpu-")

        # the next upload of the key aborts the left-over first, then stores the file whole
        info = await store.put_file(video_key(1), src, "video/mp4")
        assert info.size == len(payload)
        assert unfinished_uploads(weed, bucket) == []
        assert await _read(store, video_key(1), 7 * MiB - 3, 6) == payload[7 * MiB - 3 : 7 * MiB + 3]

        # a left-over nobody uploads again is the sweeper's: deleting its temporary name aborts it
        direct(weed)._create_multipart_upload(bucket, video_key(2), {})  # noqa: SLF001
        [tmp] = await store.list_keys("videos/2/")
        await store.delete_prefix(tmp.key)
        assert unfinished_uploads(weed, bucket) == []
        # and deleting a video's folder takes its unfinished uploads with it
        direct(weed)._create_multipart_upload(bucket, video_key(3), {})  # noqa: SLF001
        await store.delete_prefix(video_prefix(3))
        assert unfinished_uploads(weed, bucket) == []
    finally:
        await store.close()


async def test_started_while_s3_is_down_then_ready_on_first_use(weed: S3Server) -> None:
    weed.kill()  # the appliance booted before its S3 box
    bucket = f"late-{secrets.token_hex(5)}"
    store = make_s3_storage(weed.endpoint, bucket, timeout_s=2.0)
    try:
        with pytest.raises(StorageUnavailable):
            await store.start()
        started = time.monotonic()
        with pytest.raises(StorageUnavailable):
            await _read(store, video_key(1), 0, 10)
        assert time.monotonic() - started < 3
        await asyncio.to_thread(weed.restart)
        # the preparation start-up could not do (bucket, SSE probe, region) happens on first use
        await store.put_bytes(info_key(1), b"{}", "application/json")
        assert await store.get_bytes(info_key(1)) == b"{}"
        assert direct(weed).bucket_exists(bucket)
    finally:
        await store.close()


async def _expect_503(env: MediaEnv, path: str, headers: dict[str, str], limit_s: float) -> None:
    started = time.monotonic()
    resp = await env.client.get(path, headers=headers)
    elapsed = time.monotonic() - started
    body = await resp.json()
    assert resp.status == 503, body
    assert body["error"]["code"] == "storage_unavailable"
    assert resp.headers["Retry-After"] == "5"
    assert elapsed < limit_s, f"{path} took {elapsed:.1f} s"


async def test_playback_during_an_s3_outage(media_env_factory: Any, weed: S3Server, sample_bytes: bytes) -> None:
    timeout_s = 2.0
    env: MediaEnv = await media_env_factory("s3", s3_endpoint=weed.endpoint, s3_timeout_s=timeout_s)
    resp = await upload(env, sample_bytes)
    assert resp.status == 201, await resp.text()
    vid = (await resp.json())["data"]["id"]
    h = env.h("sysadmin")
    stream, thumb = f"/videos/{vid}/stream", f"/videos/{vid}/thumbnail"

    for outage, recover in ((weed.kill, weed.restart), (weed.pause, weed.resume)):
        outage()  # S3 stopped (connections refused), then S3 hung (connections accepted, never answered)
        await _expect_503(env, stream, {**h, "Range": "bytes=0-99"}, timeout_s + 1.5)
        await _expect_503(env, stream, h, timeout_s + 1.5)
        await _expect_503(env, thumb, h, timeout_s + 1.5)
        # the daemon carries on: the API answers, and HEAD needs nothing from S3
        resp = await env.client.get(f"/api/v1/videos/{vid}", headers=h)
        assert resp.status == 200
        resp = await env.client.head(stream, headers=h)
        assert (resp.status, int(resp.headers["Content-Length"])) == (200, len(sample_bytes))
        await asyncio.to_thread(recover)
        # S3 is back: playback works again at once
        resp = await env.client.get(stream, headers={**h, "Range": "bytes=100-199"})
        assert resp.status == 206
        assert await resp.read() == sample_bytes[100:200]
        resp = await env.client.get(stream, headers=h)
        assert await resp.read() == sample_bytes
        resp = await env.client.get(thumb, headers=h)
        assert resp.status == 200
        assert (await resp.read())[:2] == b"\xff\xd8"
    assert env.svc.storage.reads_in_flight == 0  # type: ignore[attr-defined]

    # unfinished uploads an outage left behind are temporary names to the orphan sweeper: it aborts them
    bucket = env.svc.storage.bucket  # type: ignore[attr-defined]
    direct(weed)._create_multipart_upload(bucket, video_key(vid), {})  # noqa: SLF001 - the video's own key
    direct(weed)._create_multipart_upload(bucket, video_key(9999), {})  # noqa: SLF001 - no row owns it
    await sweep(env.svc)
    assert unfinished_uploads(weed, bucket) == []
    resp = await env.client.get(stream, headers=h)
    assert await resp.read() == sample_bytes  # the video itself is untouched


async def test_client_leaving_or_s3_stalling_mid_stream(media_env_factory: Any, weed: S3Server,
                                                        tmp_path: Path) -> None:
    env: MediaEnv = await media_env_factory("s3", s3_endpoint=weed.endpoint, s3_timeout_s=2.0)
    store = env.svc.storage
    payload = os.urandom(MiB) * 40
    src = tmp_path / "big.mp4"
    src.write_bytes(payload)
    vid = 4242
    info = await store.put_file(video_key(vid), src, "video/mp4")
    await env.client.app[DB].execute(
        "INSERT INTO videos (id, source_kind, title, availability, storage_key, size_bytes, etag)"
        " VALUES (?, 'upload', 'big', 'available', ?, ?, ?)", (vid, video_key(vid), info.size, info.etag))
    h = env.h("sysadmin")

    # a player that goes away after the first bytes: the S3 response is closed with it, nothing is left open
    resp = await env.client.get(f"/videos/{vid}/stream", headers=h)
    assert resp.status == 200
    assert await resp.content.readexactly(MiB) == payload[:MiB]
    assert store.reads_in_flight == 1  # type: ignore[attr-defined]
    resp.close()
    await wait_until(lambda: store.reads_in_flight == 0, 5, "the S3 response to be closed")  # type: ignore[attr-defined]

    # S3 hangs after the headers went out: the connection ends after about timeout_s instead of waiting forever
    resp = await env.client.get(f"/videos/{vid}/stream", headers=h)
    assert resp.status == 200
    assert await resp.content.readexactly(MiB) == payload[:MiB]
    weed.pause()
    started = time.monotonic()
    with pytest.raises(aiohttp.ClientPayloadError):
        async with asyncio.timeout(15):  # a regression would hang here
            await resp.read()  # the rest: cut short, never complete
    assert time.monotonic() - started < 10
    assert store.reads_in_flight == 0  # type: ignore[attr-defined]
    weed.resume()


async def _attempts(env: MediaEnv, video_id: int) -> list[dict[str, Any]]:
    resp = await env.client.get(f"/api/v1/videos/{video_id}", headers=env.h("sysadmin"))
    return list((await resp.json())["data"]["download_attempts"])


async def test_s3_outage_during_the_multipart_upload_of_a_download(
        media_env_factory: Any, weed: S3Server, relay: ThrottledRelay, video_site: VideoSite) -> None:
    big = make_large_mp4(video_site.root / "big.mp4")  # about 20 MiB: four 5 MiB parts
    (video_site.root / "big.html").write_text(
        "<!doctype html><html><head><title>Long lecture</title></head>"
        '<body><video src="big.mp4"></video></body></html>')
    env: MediaEnv = await media_env_factory("s3", s3_endpoint=relay.endpoint, s3_timeout_s=5, s3_part_size_mb=5,
                                            retry_delay_s=1, max_attempts=10)
    bucket = env.svc.storage.bucket  # type: ignore[attr-defined]
    [entry] = await env.add(video_site.url("big.html"))
    vid = entry["id"]

    # yt-dlp is done, the upload to S3 is part-way: S3 goes away
    await wait_until(lambda: relay.bytes_up > 8 * MiB, 60, "the multipart upload to be under way")
    weed.kill()
    deadline = time.monotonic() + 30
    while not [a for a in await _attempts(env, vid) if a["outcome"] != "running"]:
        assert time.monotonic() < deadline, "the cut-off attempt never ended"
        await asyncio.sleep(0.1)
    first = (await _attempts(env, vid))[0]
    assert (first["outcome"], first["failure_kind"]) == ("waiting", "storage"), first
    clear = f"storage failed: S3 unreachable at {relay.endpoint}: "
    assert first["error"].startswith(clear), first["error"]
    video = await env.wait_for(vid, {"pending", "processing"})
    assert video["attempts"] == 0  # given back: S3 going away is not the video's fault
    assert "no attempt spent" in video["last_error"], video["last_error"]
    assert f"S3 unreachable at {relay.endpoint}: " in video["last_error"], video["last_error"]
    await wait_until(lambda: not list(env.svc.staging.iterdir()), 10, "staging to be emptied")

    # S3 comes back on the same port with the same data: a later attempt stores the video whole
    await asyncio.to_thread(weed.restart)
    video = await env.wait_for(vid, {"available", "error"}, timeout=60)
    assert video["availability"] == "available", video
    kinds = [(a["outcome"], a["failure_kind"]) for a in video["download_attempts"]]
    assert kinds[-1] == ("succeeded", None)
    assert set(kinds[:-1]) == {("waiting", "storage")}  # the outage spent no attempt...
    assert video["attempts"] == 1
    # ...and while S3 was down nothing was downloaded again: only the cut-off attempt ran yt-dlp
    assert [a["attempt"] for a in video["download_attempts"]] == [1] + [0] * (len(kinds) - 2) + [1]
    resp = await env.client.get(f"/videos/{vid}/stream", headers=env.h("sysadmin"))
    assert await resp.read() == big.read_bytes()
    # nothing half-written: no unfinished upload, no stray object, staging empty
    assert unfinished_uploads(weed, bucket) == []
    keys = [o.key for o in await env.svc.storage.list_keys("videos/")]
    assert keys == [f"videos/{vid}/info.json", f"videos/{vid}/thumbnail.jpg", f"videos/{vid}/video.mp4"]
    assert list(env.svc.staging.iterdir()) == []
