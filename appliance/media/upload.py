"""POST /api/v1/videos/upload: a multipart upload streamed to staging, checked with ffprobe, then stored."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from pathlib import Path
from urllib.parse import unquote

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from appliance.core.errors import ApiError, bad_request, too_large
from appliance.media import metrics
from appliance.media.api import ADMINS, insufficient_storage, routes
from appliance.media.blocking import media_blocking
from appliance.media.fetcher import AttemptFailed, Fetcher
from appliance.media.filenames import sanitize_filename, title_from_filename
from appliance.media.keys import MEDIA
from appliance.media.models import VIDEO_SCHEMA, video_json
from appliance.media.probe import NotAVideo, check_mp4_complete, make_thumbnail, probe_video
from appliance.media.service import MediaService
from appliance.media.space import NoSpace
from appliance.web.middlewares import streams_body
from appliance.web.openapi import spec
from appliance.web.policy import principal, roles
from appliance.web.responses import ok

log = logging.getLogger(__name__)
_CHUNK = 256 * 1024


async def _receive(part: BodyPartReader, dest: Path, limit: int) -> int:
    """Copy one part to disk chunk by chunk; 413 as soon as it passes the limit."""
    size = 0
    fh = await media_blocking(dest.open, "wb")
    try:
        while chunk := await part.read_chunk(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            await media_blocking(fh.write, chunk)
    finally:
        await media_blocking(fh.close)
    return size


@routes.post("/api/v1/videos/upload")
@spec(body_type="multipart/form-data", status=201,
      body={"type": "object", "properties": {"title": {"type": "string"}, "file": {"type": "string",
            "contentMediaType": "video/mp4"}}, "required": ["file"]}, response=VIDEO_SCHEMA)
@roles(*ADMINS)
@streams_body
async def upload(request: web.Request) -> web.Response:
    """Store an uploaded video; the type is decided by ffprobe on the bytes, never by the client."""
    svc: MediaService = request.app[MEDIA]
    limit = svc.settings.upload_max_mb * 1024 * 1024
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise too_large(limit)
    if not request.content_type.startswith("multipart/"):
        raise bad_request("invalid_upload", "send the video as multipart/form-data in a field named file")
    try:
        svc.space.check(await svc.repo.used_bytes(), request.content_length or 0)
    except NoSpace as exc:
        raise insufficient_storage(str(exc)) from None
    staged = svc.staging / f"upload-{secrets.token_hex(8)}"
    try:
        return await _handle(request, svc, staged, limit)
    except ApiError as err:
        metrics.UPLOADS.labels(err.code).inc()
        raise
    finally:
        await media_blocking(staged.unlink, True)


async def _read_parts(request: web.Request, staged: Path, limit: int) -> tuple[str, str | None, int]:
    """(title, file name, bytes) of the multipart body; the file part is streamed to `staged`."""
    reader = await request.multipart()
    title = ""
    filename = None
    size = 0
    async for part in reader:
        if not isinstance(part, BodyPartReader):
            raise bad_request("invalid_upload", "nested multipart is not supported")
        if part.name == "title":
            title = (await part.text())[:500].strip()
        elif part.name == "file" and filename is None:
            # some clients percent-encode the name; decode first so an encoded "../" is stripped too
            filename = sanitize_filename(unquote(part.filename or "video.mp4"))
            size = await _receive(part, staged, limit)
        else:
            await part.release()
    return title, filename, size


async def _handle(request: web.Request, svc: MediaService, staged: Path, limit: int) -> web.Response:
    try:
        title, filename, size = await _read_parts(request, staged, limit)
    except (ValueError, LookupError, HttpProcessingError) as exc:
        # a missing boundary, broken part headers or an unknown charset: the client's mistake, not ours
        raise bad_request("invalid_upload", f"malformed multipart body: {type(exc).__name__}") from None
    if filename is None or size == 0:
        raise bad_request("invalid_upload", "no file in the field named file")
    try:
        probed = await probe_video(staged)
        if "mp4" in probed.format_name or "mov" in probed.format_name:
            await media_blocking(check_mp4_complete, staged)
    except NotAVideo as exc:
        raise ApiError(422, "not_a_video", str(exc), {"filename": filename}) from None
    try:
        svc.space.check(await svc.repo.used_bytes(), size)
    except NoSpace as exc:
        raise insufficient_storage(str(exc)) from None
    p = principal(request)
    video_id = await svc.repo.add_upload(title=title or title_from_filename(filename), filename=filename,
                                         added_by=p.user_id)
    thumb = staged.with_name(staged.name + ".jpg")
    try:
        await svc.repo.set_metadata(video_id, {"duration_s": probed.duration_s, "width": probed.width,
                                               "height": probed.height, "format": probed.format_name})
        has_thumb = await make_thumbnail(staged, thumb, at_s=probed.duration_s / 3)
        await Fetcher(svc).store(video_id, staged, thumb if has_thumb else None, {"original_filename": filename})
    except AttemptFailed as exc:
        await _drop_row(svc, video_id)
        raise ApiError(503, "storage_unavailable", str(exc), headers={"Retry-After": "30"}) from None
    except BaseException:
        # the row must not outlive a failed store; Fetcher.store has already removed the files
        await asyncio.shield(_drop_row(svc, video_id))
        raise
    finally:
        await media_blocking(thumb.unlink, True)
    metrics.UPLOADS.labels("stored").inc()
    await svc.refresh_usage()
    await svc.publish_state(video_id)
    row = await svc.repo.get(video_id)
    assert row is not None
    return ok(video_json(row), status=201)


async def _drop_row(svc: MediaService, video_id: int) -> None:
    with contextlib.suppress(Exception):
        await svc.repo.delete(video_id)
