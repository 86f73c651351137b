"""Playing videos: GET|HEAD /videos/{id}/stream with Range and ETag, and the thumbnail."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import formatdate
from pathlib import Path

from aiohttp import web

from appliance.core.errors import ApiError, not_found
from appliance.keys import MEDIA
from appliance.media import metrics
from appliance.media.access import playable, video_id_of
from appliance.media.ranges import RangeNotSatisfiable, parse_range
from appliance.media.sendfile import SendfileResponse
from appliance.media.service import MediaService
from appliance.media.settings import MediaSettings
from appliance.observability.httpmetrics import BUFFER
from appliance.web.policy import principal, signed_in

routes = web.RouteTableDef()
_CHUNK = 256 * 1024
_CACHE = "private, max-age=3600"
# Counted through the per-process metrics buffer: a multiprocess counter write on every ranged read was a
# measurable share of its cost.
_DISK_BYTES = metrics.STREAM_BYTES.labels("disk")


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
        url = await svc.storage.presigned_url(key, settings.presign_expiry_s)
        if url:
            raise web.HTTPTemporaryRedirect(url, headers={"Cache-Control": "no-store"})
    return await _proxy(request, svc, key, int(row["size_bytes"] or 0), _quoted(str(row["etag"] or "")),
                        row["available_at"], "s3")


async def _proxy(request: web.Request, svc: MediaService, key: str, size: int, etag: str,
                 available_at: str | None, backend: str) -> web.StreamResponse:
    """Ranged reads passed through from the backend in chunks."""
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
    await resp.prepare(request)
    if request.method == "HEAD" or length == 0:
        return resp
    sent = 0
    try:
        async for chunk in svc.storage.read_range(key, start, length):
            await resp.write(chunk)
            sent += len(chunk)
    finally:
        BUFFER.inc(metrics.STREAM_BYTES.labels(backend), sent)
    await resp.write_eof()
    return resp


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
    data = await svc.storage.get_bytes(key)
    return web.Response(body=data, content_type="image/jpeg", headers={"Cache-Control": _CACHE})
