"""S3 backend through the `minio` client (MinIO, SeaweedFS, AWS)."""

from __future__ import annotations

import io
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import urllib3
from minio import Minio
from minio.error import S3Error
from minio.sse import SseS3

from appliance.media.blocking import media_blocking
from appliance.media.storage.base import ObjectInfo, StorageError, StorageUnavailable, check_key

log = logging.getLogger(__name__)
T = TypeVar("T")
_CHUNK = 256 * 1024
_MISSING = {"NoSuchKey", "NoSuchObject", "NoSuchBucket", "ResourceNotFound"}


def _unavailable(exc: BaseException) -> bool:
    return isinstance(exc, urllib3.exceptions.HTTPError | OSError)


class S3Storage:
    """Videos as objects in one bucket."""

    name = "s3"

    def __init__(
        self, *, endpoint: str, bucket: str, access_key: str, secret_key: str, secure: bool, region: str | None,
        part_size: int, sse: str, timeout_s: float,
    ) -> None:
        self.bucket = bucket
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self.part_size = part_size
        self.sse_mode = sse
        self.sse: SseS3 | None = None
        timeout = urllib3.Timeout(connect=timeout_s, read=timeout_s)
        # few retries: an unreachable S3 must surface quickly as StorageUnavailable, not hang a download
        retries = urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[502, 503, 504])
        self.http = urllib3.PoolManager(timeout=timeout, retries=retries, maxsize=64)
        self.client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure,
                            region=region or None, http_client=self.http)

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return await media_blocking(lambda: fn(*args, **kwargs))
        except S3Error:
            raise
        except Exception as exc:
            if _unavailable(exc):
                raise StorageUnavailable(f"S3 unreachable: {exc}") from exc
            raise

    async def start(self) -> None:
        """Create the bucket if missing and find out whether SSE-S3 works here."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(sock_connect=self.timeout_s, sock_read=self.timeout_s),
                connector=aiohttp.TCPConnector(limit=128), auto_decompress=False,
            )
        if not await self._call(self.client.bucket_exists, self.bucket):
            try:
                await self._call(self.client.make_bucket, self.bucket)
            except S3Error as exc:
                if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                    raise
        if self.sse_mode == "s3":
            self.sse = SseS3()
        elif self.sse_mode == "auto":
            self.sse = await self._probe_sse()
        # presigning needs the bucket's region; look it up now (network) so later presigns stay local
        await self._call(self.client.presigned_get_object, self.bucket, "probe")

    async def _probe_sse(self) -> SseS3 | None:
        key = f"probe/.sse-{secrets.token_hex(4)}"
        try:
            await self._call(self.client.put_object, self.bucket, key, io.BytesIO(b"x"), 1, sse=SseS3())
        except (S3Error, StorageUnavailable, urllib3.exceptions.HTTPError) as exc:
            log.info("S3 server-side encryption not supported by this server; storing unencrypted (%s)", exc)
            return None
        await self._call(self.client.remove_object, self.bucket, key)
        return SseS3()

    async def close(self) -> None:
        """Close the connection pools."""
        if self._session is not None:
            await self._session.close()
            self._session = None
        self.http.clear()

    async def put_file(self, key: str, src: Path, content_type: str) -> ObjectInfo:
        """Upload (multipart above the part size); src is consumed."""
        check_key(key)
        await self._call(self.client.fput_object, self.bucket, key, str(src), content_type=content_type,
                         part_size=self.part_size, sse=self.sse)
        await media_blocking(src.unlink, True)
        info = await self.stat(key)
        if info is None:
            raise StorageError(f"object {key!r} missing right after upload")
        return info

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> ObjectInfo:
        """Upload a small object."""
        check_key(key)
        await self._call(self.client.put_object, self.bucket, key, io.BytesIO(data), len(data),
                         content_type=content_type, sse=self.sse)
        info = await self.stat(key)
        if info is None:
            raise StorageError(f"object {key!r} missing right after upload")
        return info

    async def get_bytes(self, key: str) -> bytes:
        """Download a small object."""
        check_key(key)

        def read() -> bytes:
            resp = self.client.get_object(self.bucket, key)
            try:
                return bytes(resp.read())
            finally:
                resp.close()
                resp.release_conn()

        try:
            return await self._call(read)
        except S3Error as exc:
            raise StorageError(f"no object {key!r}: {exc.code}") from exc

    async def stat(self, key: str) -> ObjectInfo | None:
        """Object metadata, or None."""
        check_key(key)
        try:
            st = await self._call(self.client.stat_object, self.bucket, key)
        except S3Error as exc:
            if exc.code in _MISSING:
                return None
            raise
        mtime = st.last_modified.timestamp() if st.last_modified else 0.0
        return ObjectInfo(key=key, size=int(st.size or 0), etag=str(st.etag or ""), mtime=mtime)

    async def read_range(self, key: str, start: int, length: int) -> AsyncIterator[bytes]:
        """Ranged GET passed through in chunks, on the event loop (a presigned URL, no thread per chunk)."""
        check_key(key)
        if self._session is None:
            raise StorageUnavailable("S3 storage is not started")
        url = self.client.presigned_get_object(self.bucket, key, expires=timedelta(minutes=10))
        headers = {"Range": f"bytes={start}-{start + length - 1}"}
        try:
            async with self._session.get(url, headers=headers) as resp:
                if resp.status == 404:
                    raise StorageError(f"no object {key!r}")
                if resp.status not in (200, 206) or (resp.status == 200 and start != 0):
                    raise StorageUnavailable(f"S3 answered {resp.status} to a ranged read")
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise StorageUnavailable(f"S3 unreachable: {exc}") from exc

    def local_path(self, key: str) -> Path | None:
        """S3 objects have no local path."""
        return None

    async def presigned_url(self, key: str, expires_s: int) -> str | None:
        """A presigned GET URL valid for `expires_s` seconds."""
        check_key(key)
        return await self._call(self.client.presigned_get_object, self.bucket, key,
                                expires=timedelta(seconds=expires_s))

    async def delete_prefix(self, prefix: str) -> None:
        """Remove every object under `prefix`."""
        for obj in await self.list_keys(prefix):
            await self._call(self.client.remove_object, self.bucket, obj.key)

    async def list_keys(self, prefix: str) -> list[ObjectInfo]:
        """All objects under `prefix`."""

        def walk() -> list[ObjectInfo]:
            out = []
            for o in self.client.list_objects(self.bucket, prefix=prefix, recursive=True):
                if o.is_dir or not o.object_name:
                    continue
                mtime = o.last_modified.timestamp() if o.last_modified else 0.0
                out.append(ObjectInfo(key=o.object_name, size=int(o.size or 0), etag=str(o.etag or ""), mtime=mtime))
            return out

        return await self._call(walk)
