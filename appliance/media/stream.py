"""Playing videos: GET|HEAD /videos/{id}/stream with Range and ETag, and the thumbnail."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from email.utils import formatdate
from pathlib import Path

from aiohttp import web

from appliance.core.errors import ApiError, not_found
from appliance.media import metrics
from appliance.media.access import playable, video_id_of
from appliance.media.keys import MEDIA
from appliance.media.ranges import RangeNotSatisfiable, parse_range
from appliance.media.sendfile import SendfileResponse
from appliance.media.service import MediaService
from appliance.media.settings import MediaSettings
from appliance.media.storage import StorageError, StorageUnavailable
from appliance.observability.httpmetrics import BUFFER
from appliance.web.policy import principal, signed_in

routes = web.RouteTableDef()
_CHUNK = 256 * 1024
_CACHE = "private, max-age=3600"
# Counted through the per-process metrics buffer: a multiprocess counter write on every ranged read was a
# measurable share of its cost.
_DISK_BYTES = metrics.STREAM_BYTES.labels("disk")
log = logging.getLogger(__name__)
_STORAGE_RETRY_S = 5
_storage_warned_at = float("-inf")


def _quoted(etag: str) -> str:
    return etag if etag.startswith('"') else f'"{etag}"'


def _range_applies(request: web.Request, etag: str) -> bool:
    """If-Range with another validator means: send the whole file, ignore Range."""
    if_range = request.headers.get("If-Range")
    return if_range is None or if_range.strip() == etag


def _unsatisfiable(size: int, reason: str) -> ApiError:
    return ApiError(416, "range_not_satisfiable", reason, {"size": size},
                    headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"})


@routes.get(r"/videos/{id:\d+}/stream")
@signed_in
async def stream(request: web.Request) -> web.StreamResponse:
    """Stream a video: sendfile from disk, ranged pass-through or presigned redirect for S3."""
    svc = request.app[MEDIA]
    row = await playable(svc.repo, principal(request), video_id_of(request))
    key = str(row["storage_key"])
    path = svc.storage.local_path(key)
    if path is not None:
        return await _from_disk(request, svc, path)
    settings: MediaSettings = svc.settings
    if settings.stream_mode == "redirect":
        try:
            url = await svc.storage.presigned_url(key, settings.presign_expiry_s)
        except StorageUnavailable as exc:
            raise _storage_down(exc) from None
        if url:
            raise web.HTTPTemporaryRedirect(url, headers={"Cache-Control": "no-store"})
    return await _proxy(request, svc, key, int(row["size_bytes"] or 0), _quoted(str(row["etag"] or "")),
                        row["available_at"], "s3")


async def _proxy(request: web.Request, svc: MediaService, key: str, size: int, etag: str,
                 available_at: str | None, backend: str) -> web.StreamResponse:
    """Ranged reads passed through from the backend in chunks.

    Nothing is sent before the backend has answered, so an outage is a prompt 503 rather than a 200 that
    breaks off; a read that fails after the headers went out ends the connection (the player sees a short
    body and asks again), and a client that goes away closes the backend's response at once.
    """
    if request.headers.get("If-None-Match", "").strip() == etag:
        raise web.HTTPNotModified(headers={"ETag": etag})
    headers = {"Accept-Ranges": "bytes", "ETag": etag, "Content-Type": "video/mp4", "Cache-Control": _CACHE}
    if available_at:
        when = datetime.strptime(str(available_at), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        headers["Last-Modified"] = formatdate(when.timestamp(), usegmt=True)
    rng = None
    if _range_applies(request, etag):
        try:
            rng = parse_range(request.headers.get("Range"), size)
        except RangeNotSatisfiable as exc:
            raise _unsatisfiable(size, str(exc)) from None
    start, length = (rng.start, rng.length) if rng else (0, size)
    resp = web.StreamResponse(status=206 if rng else 200, headers=headers)
    if rng:
        resp.headers["Content-Range"] = rng.content_range()
    resp.content_length = length
    if request.method == "HEAD" or length == 0:
        await resp.prepare(request)
        return resp
    reader = svc.storage.read_range(key, start, length)
    sent = 0
    try:
        try:
            chunk = await anext(reader, b"")
        except StorageUnavailable as exc:
            raise _storage_down(exc) from None
        except StorageError:
            raise not_found("video file is missing") from None
        await resp.prepare(request)
        try:
            while chunk:
                await resp.write(chunk)
                sent += len(chunk)
                chunk = await anext(reader, b"")
        except (StorageError, ConnectionResetError) as exc:
            if isinstance(exc, StorageError):
                _log_storage_down(exc)
            if request.transport is not None:
                request.transport.close()
            return resp
        await resp.write_eof()
        return resp
    finally:
        await reader.aclose()  # releases the backend's response now, not whenever the generator is collected
        BUFFER.inc(metrics.STREAM_BYTES.labels(backend), sent)


def _log_storage_down(exc: StorageError) -> None:
    """One warning a minute per process, not one per player retry."""
    global _storage_warned_at
    now = time.monotonic()
    if now - _storage_warned_at >= 60:
        _storage_warned_at = now
        log.warning("video storage unavailable: %s", exc)


def _storage_down(exc: StorageError) -> ApiError:
    """503 with Retry-After: the storage backend (S3) cannot be reached; the player may try again shortly."""
    _log_storage_down(exc)
    return ApiError(503, "storage_unavailable", "video storage cannot be reached right now; try again shortly",
                    {"retry_after": _STORAGE_RETRY_S}, headers={"Retry-After": str(_STORAGE_RETRY_S)})


async def _from_disk(request: web.Request, svc: MediaService, path: Path) -> web.StreamResponse:
    """Range, ETag and If-None-Match/If-Range handled here; the bytes go out with sendfile(2)."""
    try:
        f = await svc.open_files.get(path)
    except FileNotFoundError:
        raise not_found("video file is missing") from None
    if request.headers.get("If-None-Match", "").strip() == f.etag:
        raise web.HTTPNotModified(headers={"ETag": f.etag})
    headers = {"Accept-Ranges": "bytes", "ETag": f.etag, "Content-Type": "video/mp4", "Cache-Control": _CACHE,
               "Last-Modified": f.last_modified}
    rng = None
    if _range_applies(request, f.etag):
        try:
            rng = parse_range(request.headers.get("Range"), f.size)
        except RangeNotSatisfiable as exc:
            raise _unsatisfiable(f.size, str(exc)) from None
    if rng:
        headers["Content-Range"] = rng.content_range()
    start, length = (rng.start, rng.length) if rng else (0, f.size)
    if request.method != "HEAD":
        BUFFER.inc(_DISK_BYTES, length)
    return SendfileResponse(f.fobj, start, length, status=206 if rng else 200, headers=headers)


@routes.get(r"/videos/{id:\d+}/thumbnail")
@signed_in
async def thumbnail(request: web.Request) -> web.StreamResponse:
    """The video's JPEG thumbnail."""
    svc = request.app[MEDIA]
    row = await playable(svc.repo, principal(request), video_id_of(request))
    key = row["thumbnail_key"]
    if not key:
        raise not_found("this video has no thumbnail")
    path = svc.storage.local_path(key)
    if path is not None:
        return web.FileResponse(path, headers={"Cache-Control": _CACHE, "Content-Type": "image/jpeg"})
    try:
        data = await svc.storage.get_bytes(key)
    except StorageUnavailable as exc:
        raise _storage_down(exc) from None
    except StorageError:
        raise not_found("thumbnail file is missing") from None
    return web.Response(body=data, content_type="image/jpeg", headers={"Cache-Control": _CACHE})
