"""S3 backend through the `minio` client (MinIO, SeaweedFS, AWS).

An S3 outage is expected (the bucket is often a box next to the appliance that reboots on its own schedule):
every call that cannot reach S3 raises StorageUnavailable within about `timeout_s`, a start-up that could not
reach S3 is completed on first use, and an upload cut off half-way leaves no multipart upload behind for long.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
import secrets
from collections.abc import AsyncGenerator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import urllib3
from minio import Minio
from minio.datatypes import Upload
from minio.error import InvalidResponseError, S3Error, ServerError
from minio.sse import SseS3

from appliance.media.blocking import media_blocking
from appliance.media.storage.base import (
    TMP_MARK,
    ObjectInfo,
    StorageError,
    StorageUnavailable,
    check_key,
    is_temporary,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
_CHUNK = 256 * 1024
_MISSING = {"NoSuchKey", "NoSuchObject", "NoSuchBucket", "ResourceNotFound"}
# error codes that mean "the service is struggling", not "this request is wrong"
_BUSY = {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "ServiceUnavailableException"}
# temporary name of an unfinished multipart upload: `.video.mp4.tmp-mpu-<hash of the upload id>`
_MPU = "mpu-"


def _unreachable(exc: BaseException) -> bool:
    # not every OSError: a missing local source file is not an S3 outage
    return isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError)


def _why(exc: BaseException, timeout_s: float) -> str:
    """A short reason S3 could not be reached (urllib3's and aiohttp's own messages name pools and objects)."""
    reason: BaseException = exc
    if isinstance(reason, urllib3.exceptions.MaxRetryError) and reason.reason is not None:
        reason = reason.reason
    if isinstance(reason, urllib3.exceptions.ConnectTimeoutError | urllib3.exceptions.ReadTimeoutError
                  | TimeoutError | aiohttp.ServerTimeoutError):
        return f"no answer within {timeout_s:g} s"
    if isinstance(reason, urllib3.exceptions.NewConnectionError | aiohttp.ClientConnectorError
                  | ConnectionRefusedError):
        err = reason if isinstance(reason, OSError) and reason.errno else reason.__cause__ or reason.__context__
        return f"cannot connect ({os.strerror(err.errno) if isinstance(err, OSError) and err.errno else 'failed'})"
    if isinstance(reason, urllib3.exceptions.ProtocolError | aiohttp.ServerDisconnectedError
                  | aiohttp.ClientPayloadError | ConnectionError):
        return "the connection was dropped"
    return f"{type(reason).__name__}: {str(reason)[:200]}"


class S3Failed(StorageError):
    """S3 answered with an error for this request (access denied, no such bucket...)."""

    def __init__(self, exc: S3Error) -> None:
        super().__init__(f"S3 refused: {exc.code}: {exc.message}")
        self.code = exc.code


def _upload_tmp_key(upload: Upload) -> str | None:
    """The temporary name an unfinished upload is listed under (None if its key is not one of ours)."""
    folder, _, name = upload.object_name.rpartition("/")
    digest = hashlib.sha256(str(upload.upload_id).encode()).hexdigest()[:16]
    key = f"{folder}/.{name}{TMP_MARK}{_MPU}{digest}"
    try:
        return check_key(key)
    except StorageError:
        return None


class S3Storage:
    """Videos as objects in one bucket."""

    name = "s3"

    def __init__(
        self, *, endpoint: str, bucket: str, access_key: str, secret_key: str, secure: bool, region: str | None,
        part_size: int, sse: str, timeout_s: float,
    ) -> None:
        self.endpoint = endpoint
        self.bucket = bucket
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self.part_size = part_size
        self.sse_mode = sse
        self.sse: SseS3 | None = None
        self._ready = False
        self._preparing: asyncio.Future[None] | None = None
        self.reads_in_flight = 0  # ranged reads with an open S3 response (observable: nothing may leak)
        timeout = urllib3.Timeout(connect=timeout_s, read=timeout_s)
        # few retries: an unreachable S3 must surface quickly as StorageUnavailable, not hang a download
        retries = urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[502, 503, 504])
        self.http = urllib3.PoolManager(timeout=timeout, retries=retries, maxsize=64)
        self.client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure,
                            region=region or None, http_client=self.http)

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A blocking minio call on the media pool; failures become StorageUnavailable or S3Failed."""
        try:
            return await media_blocking(lambda: fn(*args, **kwargs))
        except S3Error as exc:
            status = getattr(exc.response, "status", 0) or 0
            if exc.code in _BUSY or status >= 500:
                raise StorageUnavailable(f"S3 at {self.endpoint} is failing: {exc.code}: {exc.message}") from exc
            raise S3Failed(exc) from exc
        except (ServerError, InvalidResponseError) as exc:
            raise StorageUnavailable(f"S3 at {self.endpoint} is failing: {str(exc)[:200]}") from exc
        except Exception as exc:
            if _unreachable(exc):
                raise StorageUnavailable(f"S3 unreachable at {self.endpoint}: {_why(exc, self.timeout_s)}") from exc
            raise

    async def start(self) -> None:
        """Create the bucket if missing and find out whether SSE-S3 works here.

        If S3 cannot be reached this raises StorageUnavailable, and the same preparation runs again on the
        first call that needs S3, so an appliance that booted before its S3 server works once S3 is up.
        """
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(sock_connect=self.timeout_s, sock_read=self.timeout_s),
                connector=aiohttp.TCPConnector(limit=128), auto_decompress=False,
            )
        await self._ensure_ready(to_the_end=True)

    async def _ensure_ready(self, *, to_the_end: bool = False) -> None:
        """Finish the start-up preparation if it has not succeeded yet.

        A request waits at most timeout_s for it (the preparation goes on for the next caller); `start` waits
        until it is done.
        """
        if self._ready:
            return
        if self._preparing is None or self._preparing.done():
            # one preparation at a time, shared by every caller, referenced here until it is done
            self._preparing = asyncio.get_running_loop().create_task(self._prepare(), name="media-s3-prepare")
        wait = None if to_the_end else self.timeout_s
        try:
            await asyncio.wait_for(asyncio.shield(self._preparing), wait)
        except TimeoutError as exc:
            raise StorageUnavailable(f"S3 did not answer within {self.timeout_s:g} s") from exc

    async def _prepare(self) -> None:
        if not await self._call(self.client.bucket_exists, self.bucket):
            try:
                await self._call(self.client.make_bucket, self.bucket)
            except S3Failed as exc:
                if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                    raise
        sse: SseS3 | None = None
        if self.sse_mode == "s3":
            sse = SseS3()
        elif self.sse_mode == "auto":
            sse = await self._probe_sse()
        # presigning needs the bucket's region; look it up now (network) so later presigns stay local
        await self._call(self.client.presigned_get_object, self.bucket, "probe")
        self.sse = sse
        self._ready = True

    async def _probe_sse(self) -> SseS3 | None:
        key = f"probe/.sse-{secrets.token_hex(4)}"
        try:
            await self._call(self.client.put_object, self.bucket, key, io.BytesIO(b"x"), 1, sse=SseS3())
        except StorageError as exc:
            # any answer from S3 is a refusal (SeaweedFS without a KMS says InternalError); not reaching S3 at all
            # is no answer, and the preparation is tried again later
            if not isinstance(exc.__cause__, S3Error | ServerError | InvalidResponseError):
                raise
            log.info("S3 server-side encryption not supported by this server; storing unencrypted (%s)", exc)
            return None
        await self._call(self.client.remove_object, self.bucket, key)
        return SseS3()

    async def check(self) -> None:
        """Raise StorageUnavailable unless S3 answers now (the bucket exists and is reachable)."""
        await self._ensure_ready()
        if not await self._call(self.client.bucket_exists, self.bucket):
            raise StorageError(f"bucket {self.bucket!r} is missing")

    async def close(self) -> None:
        """Close the connection pools."""
        if self._preparing is not None and not self._preparing.done():
            self._preparing.cancel()
        if self._session is not None:
            await self._session.close()
            self._session = None
        self.http.clear()

    # ------------------------------------------------------------------------------------------ writing

    async def put_file(self, key: str, src: Path, content_type: str) -> ObjectInfo:
        """Upload (multipart above the part size); src is consumed.

        A multipart upload that fails half-way is aborted; minio tries that itself, but not while S3 is
        unreachable, so the next upload of the same key aborts what is left first (and the sweeper, which sees
        unfinished uploads as temporary names, catches the rest).
        """
        check_key(key)
        await self._ensure_ready()
        multipart = (await media_blocking(src.stat)).st_size > self.part_size
        if multipart:
            await self._abort_uploads(key, exact=True)
        try:
            await self._call(self.client.fput_object, self.bucket, key, str(src), content_type=content_type,
                             part_size=self.part_size, sse=self.sse)
        except StorageUnavailable:
            if multipart:
                try:
                    await self._abort_uploads(key, exact=True)
                except StorageError:
                    log.info("S3 unreachable: the unfinished upload of %s is aborted later", key)
            raise
        await media_blocking(src.unlink, True)
        info = await self.stat(key)
        if info is None:
            raise StorageError(f"object {key!r} missing right after upload")
        return info

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> ObjectInfo:
        """Upload a small object."""
        check_key(key)
        await self._ensure_ready()
        await self._call(self.client.put_object, self.bucket, key, io.BytesIO(data), len(data),
                         content_type=content_type, sse=self.sse)
        info = await self.stat(key)
        if info is None:
            raise StorageError(f"object {key!r} missing right after upload")
        return info

    # ------------------------------------------------------------------------------------------ reading

    async def _open(self, key: str, headers: dict[str, str]) -> aiohttp.ClientResponse:
        """GET a presigned URL on the event loop; the response once S3 has answered with its headers."""
        await self._ensure_ready()
        if self._session is None:
            raise StorageUnavailable("S3 storage is not started")
        url = self.client.presigned_get_object(self.bucket, key, expires=timedelta(minutes=10))
        try:
            async with asyncio.timeout(self.timeout_s):
                resp = await self._session.get(url, headers=headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise StorageUnavailable(f"S3 unreachable at {self.endpoint}: {_why(exc, self.timeout_s)}") from exc
        if resp.status == 404:
            resp.release()
            raise StorageError(f"no object {key!r}")
        if resp.status not in (200, 206):
            resp.release()
            raise StorageUnavailable(f"S3 answered {resp.status} to a read of {key!r}")
        return resp

    async def get_bytes(self, key: str) -> bytes:
        """Download a small object (bounded by timeout_s like the ranged reads)."""
        check_key(key)
        resp = await self._open(key, {})
        try:
            return await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            resp.close()
            raise StorageUnavailable(f"S3 read of {key!r} failed: {_why(exc, self.timeout_s)}") from exc
        finally:
            resp.release()

    async def stat(self, key: str) -> ObjectInfo | None:
        """Object metadata, or None."""
        check_key(key)
        await self._ensure_ready()
        try:
            st = await self._call(self.client.stat_object, self.bucket, key)
        except S3Failed as exc:
            if exc.code in _MISSING:
                return None
            raise
        mtime = st.last_modified.timestamp() if st.last_modified else 0.0
        return ObjectInfo(key=key, size=int(st.size or 0), etag=str(st.etag or ""), mtime=mtime)

    async def read_range(self, key: str, start: int, length: int) -> AsyncGenerator[bytes, None]:
        """Ranged GET passed through in chunks, on the event loop (a presigned URL, no thread per chunk).

        Nothing is yielded before S3 has answered, so a caller can still turn an outage into an error
        response; closing the generator early closes the S3 response with it.
        """
        check_key(key)
        resp = await self._open(key, {"Range": f"bytes={start}-{start + length - 1}"})
        self.reads_in_flight += 1
        remaining = length
        try:
            if resp.status == 200 and start != 0:
                raise StorageUnavailable("S3 ignored the Range of a read")
            try:
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    if len(chunk) > remaining:
                        chunk = chunk[:remaining]  # a server that ignored Range sends the whole object
                    remaining -= len(chunk)
                    yield chunk
                    if remaining <= 0:
                        break
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise StorageUnavailable(f"S3 read of {key!r} failed: {_why(exc, self.timeout_s)}") from exc
            if remaining > 0:
                raise StorageUnavailable(f"S3 ended the read of {key!r} {remaining} bytes early")
        finally:
            self.reads_in_flight -= 1
            if remaining > 0:
                resp.close()  # stopped early: the connection cannot be reused
            else:
                resp.release()

    def local_path(self, key: str) -> Path | None:
        """S3 objects have no local path."""
        return None

    async def presigned_url(self, key: str, expires_s: int) -> str | None:
        """A presigned GET URL valid for `expires_s` seconds."""
        check_key(key)
        await self._ensure_ready()
        return await self._call(self.client.presigned_get_object, self.bucket, key,
                                expires=timedelta(seconds=expires_s))

    # ------------------------------------------------------------------------------------------ listing

    async def _uploads(self, prefix: str) -> list[Upload]:
        """Unfinished multipart uploads under `prefix` (ListMultipartUploads; minio has no public call)."""

        def walk() -> list[Upload]:
            out: list[Upload] = []
            key_marker = upload_marker = None
            while True:
                page = self.client._list_multipart_uploads(  # noqa: SLF001
                    self.bucket, prefix=prefix, key_marker=key_marker, upload_id_marker=upload_marker)
                out.extend(page.uploads)
                if not page.is_truncated or not page.uploads:
                    return out
                key_marker, upload_marker = page.uploads[-1].object_name, page.uploads[-1].upload_id

        try:
            return await self._call(walk)
        except S3Failed as exc:
            if exc.code in {"NotImplemented", "NoSuchBucket"}:
                return []
            raise

    async def _abort_uploads(self, prefix: str, *, exact: bool = False, tmp_key: str | None = None) -> int:
        """Abort unfinished uploads of the key `prefix` (exact), of one temporary name, or under a prefix."""
        aborted = 0
        for upload in await self._uploads(prefix):
            if exact and upload.object_name != prefix:
                continue
            if tmp_key is not None and _upload_tmp_key(upload) != tmp_key:
                continue
            try:
                await self._call(self.client._abort_multipart_upload,  # noqa: SLF001
                                 self.bucket, upload.object_name, upload.upload_id)
            except S3Failed as exc:
                if exc.code != "NoSuchUpload":
                    raise
            aborted += 1
        if aborted:
            log.info("aborted %d unfinished S3 upload(s) under %s", aborted, prefix)
        return aborted

    async def delete_prefix(self, prefix: str) -> None:
        """Remove every object under `prefix` and abort unfinished uploads there; a temporary name aborts one."""
        await self._ensure_ready()
        if is_temporary(prefix):
            folder, _, name = prefix.rpartition("/")
            real = name[1:].split(TMP_MARK, 1)[0]
            await self._abort_uploads(f"{folder}/{real}", exact=True, tmp_key=prefix)
            return
        for obj in await self._objects(prefix):
            await self._call(self.client.remove_object, self.bucket, obj.key)
        await self._abort_uploads(prefix)

    async def _objects(self, prefix: str) -> list[ObjectInfo]:
        def walk() -> list[ObjectInfo]:
            out = []
            for o in self.client.list_objects(self.bucket, prefix=prefix, recursive=True):
                if o.is_dir or not o.object_name:
                    continue
                mtime = o.last_modified.timestamp() if o.last_modified else 0.0
                out.append(ObjectInfo(key=o.object_name, size=int(o.size or 0), etag=str(o.etag or ""), mtime=mtime))
            return out

        return await self._call(walk)

    async def list_keys(self, prefix: str) -> list[ObjectInfo]:
        """All objects under `prefix`, and unfinished multipart uploads as temporary names (for the sweeper)."""
        await self._ensure_ready()
        out = await self._objects(prefix)
        for upload in await self._uploads(prefix):
            key = _upload_tmp_key(upload)
            if key is not None:
                started = upload.initiated_time.timestamp() if upload.initiated_time else 0.0
                out.append(ObjectInfo(key=key, size=0, etag="", mtime=started))
        return sorted(out, key=lambda o: o.key)
