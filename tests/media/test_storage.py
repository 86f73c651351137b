"""The storage interface, run against local disk and a real SeaweedFS S3."""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path

import aiohttp
import pytest

from appliance.media.storage import StorageError, StorageUnavailable, video_key, video_prefix
from appliance.media.storage.disk import DiskStorage
from appliance.media.storage.s3 import S3Storage
from tests.media.conftest import make_s3_storage
from tests.media.realservers import S3Server, free_port


async def _read(store: DiskStorage | S3Storage, key: str, start: int, length: int) -> bytes:
    return b"".join([chunk async for chunk in store.read_range(key, start, length)])


async def test_put_stat_read_delete(storage: DiskStorage | S3Storage, sample_bytes: bytes, tmp_path: Path) -> None:
    src = tmp_path / "upload.bin"
    src.write_bytes(sample_bytes)
    data = sample_bytes
    info = await storage.put_file(video_key(7), src, "video/mp4")
    assert info.size == len(data)
    assert info.etag
    assert not src.exists()  # consumed: nothing half-written left in staging
    stat = await storage.stat(video_key(7))
    assert stat is not None
    assert (stat.size, stat.etag) == (info.size, info.etag)
    assert await _read(storage, video_key(7), 100, 1000) == data[100:1100]
    assert await _read(storage, video_key(7), len(data) - 10, 10) == data[-10:]
    await storage.put_bytes("videos/7/info.json", b'{"title": "x"}', "application/json")
    assert await storage.get_bytes("videos/7/info.json") == b'{"title": "x"}'
    keys = [o.key for o in await storage.list_keys("videos/")]
    assert keys == ["videos/7/info.json", "videos/7/video.mp4"]
    await storage.delete_prefix(video_prefix(7))
    assert await storage.stat(video_key(7)) is None
    assert await storage.list_keys("videos/") == []
    with pytest.raises(StorageError):
        await storage.get_bytes("videos/7/info.json")


@pytest.mark.parametrize("key", ["../x", "videos/../../etc/passwd", "/etc/passwd", "videos//x", "videos/.x", "a/..",
                                 "videos/1/..%2f", "videos/1/a b", "videos/1/..v.tmp-1", "videos/.v.tmp-1/x",
                                 "videos/1/.v.tmp-../x", ".v.tmp-1"])
async def test_keys_cannot_escape(storage: DiskStorage | S3Storage, key: str) -> None:
    with pytest.raises(StorageError):
        await storage.stat(key)


async def test_overwrite_is_atomic_and_leaves_no_temp(storage: DiskStorage | S3Storage, tmp_path: Path) -> None:
    for n in (1, 2):
        src = tmp_path / f"v{n}"
        src.write_bytes(bytes([n]) * 4096)
        await storage.put_file(video_key(3), src, "video/mp4")
    assert await _read(storage, video_key(3), 0, 4) == b"\x02" * 4
    assert [o.key for o in await storage.list_keys("videos/3/")] == ["videos/3/video.mp4"]


async def test_temporary_names_are_listed_and_deletable(storage: DiskStorage | S3Storage) -> None:
    """What the orphan sweeper relies on: a write cut short leaves a temporary name it can see and remove."""
    if isinstance(storage, DiskStorage):
        folder = storage.root / "videos/4"
        folder.mkdir(parents=True)
        (folder / ".video.mp4.tmp-0123abcd").write_bytes(b"half a file")  # a rename that never happened
    else:
        # an unfinished multipart upload (S3 went away before it was completed or aborted)
        await asyncio.to_thread(storage.client._create_multipart_upload, storage.bucket, video_key(4), {})
    [tmp] = await storage.list_keys("videos/")
    assert tmp.key.startswith("videos/4/.video.mp4.tmp-")
    assert tmp.mtime > 0
    await storage.delete_prefix(tmp.key)
    assert await storage.list_keys("videos/") == []


async def test_disk_layout_under_content_cache(tmp_path: Path) -> None:
    store = DiskStorage(tmp_path / "content-cache")
    await store.start()
    src = tmp_path / "f"
    src.write_bytes(b"abc")
    await store.put_file(video_key(12), src, "video/mp4")
    assert (tmp_path / "content-cache/videos/12/video.mp4").read_bytes() == b"abc"
    assert store.local_path(video_key(12)) == (tmp_path / "content-cache/videos/12/video.mp4").resolve()


async def test_disk_symlink_escape_refused(tmp_path: Path) -> None:
    store = DiskStorage(tmp_path / "root")
    await store.start()
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, tmp_path / "root/videos/9")
    with pytest.raises(StorageError, match="escapes"):
        store.path_for("videos/9/video.mp4")


@pytest.mark.slow
async def test_s3_multipart_bucket_creation_and_presigned(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = f"mp-{secrets.token_hex(5)}"
    store = make_s3_storage(s3_server.endpoint, bucket, part_size=5 * 1024 * 1024)
    await store.start()  # creates the missing bucket
    assert store.client.bucket_exists(bucket)
    big = tmp_path / "big.bin"
    payload = os.urandom(1024 * 1024) * 12  # 12 MiB: three parts
    big.write_bytes(payload)
    info = await store.put_file(video_key(1), big, "video/mp4")
    assert info.size == len(payload)
    assert "-" in info.etag  # multipart ETags carry the part count
    mid = 6 * 1024 * 1024
    assert await _read(store, video_key(1), mid - 5, 10) == payload[mid - 5 : mid + 5]
    url = await store.presigned_url(video_key(1), 60)
    assert url is not None
    async with aiohttp.ClientSession() as http, http.get(url, headers={"Range": "bytes=0-99"}) as resp:
        assert resp.status == 206
        assert await resp.read() == payload[:100]
    await store.start()  # idempotent on an existing bucket
    await store.close()


async def test_s3_sse_auto_falls_back_when_unsupported(s3_server: S3Server) -> None:
    store = make_s3_storage(s3_server.endpoint, f"sse-{secrets.token_hex(5)}", sse="auto")
    await store.start()
    # this SeaweedFS has no KMS configured: SSE-S3 is refused, so objects are stored without it
    assert store.sse is None
    assert await store.put_bytes("videos/1/info.json", b"{}", "application/json")
    await store.close()


async def test_s3_unreachable_is_reported(tmp_path: Path) -> None:
    store = make_s3_storage(f"127.0.0.1:{free_port()}", "nobucket", timeout_s=1.0)
    with pytest.raises(StorageUnavailable):
        await store.start()
    src = tmp_path / "f"
    src.write_bytes(b"x")
    with pytest.raises(StorageUnavailable):
        await store.put_file(video_key(1), src, "video/mp4")
    await store.close()
