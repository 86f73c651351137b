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
from appliance.media.blocking import media_blocking
from appliance.media.ranges import RangeNotSatisfiable, parse_range
from appliance.media.service import MediaService
from appliance.media.settings import MediaSettings
from appliance.media.storage.disk import disk_etag
from appliance.web.policy import principal, signed_in

routes = web.RouteTableDef()
_CHUNK = 256 * 1024
_CACHE = "private, max-age=3600"


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
        return await _from_disk(request, svc, key, path, int(row["size_bytes"] or 0), row["available_at"])
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
        metrics.STREAM_BYTES.labels(backend).inc(sent)
    await resp.write_eof()
    return resp


async def _from_disk(request: web.Request, svc: MediaService, key: str, path: Path, size: int,
                     available_at: str | None) -> web.StreamResponse:
    # validate the range ourselves (against the stored size) so a bad one gets the JSON error, as on S3;
    # FileResponse then does Range, ETag, If-None-Match and zero-copy sendfile
    header = request.headers.get("Range")
    if header is not None and "If-Range" in request.headers:
        try:
            st = await media_blocking(path.stat)
        except FileNotFoundError:
            raise not_found("video file is missing") from None
        etag = _quoted(disk_etag(st))
        if not _range_applies(request, etag):
            # aiohttp only understands If-Range dates; an entity tag that no longer matches means: whole file
            return await _proxy(request, svc, key, st.st_size, etag, available_at, "disk")
    sent = size
    if header is not None:
        try:
            rng = parse_range(header, size)
        except RangeNotSatisfiable as exc:
            raise _unsatisfiable(size, str(exc)) from None
        sent = rng.length if rng else size
    if request.method != "HEAD":
        metrics.STREAM_BYTES.labels("disk").inc(sent)
    return web.FileResponse(path, chunk_size=_CHUNK, headers={"Cache-Control": _CACHE})


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
    return web.Response(body=data, content_type="image/jpeg",
                        headers={"Cache-Control": _CACHE, "Last-Modified": formatdate(usegmt=True)})
