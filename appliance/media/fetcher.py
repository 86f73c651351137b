"""One download job: check the target, run yt-dlp, verify the file, store it, update the row."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import shutil
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from appliance.core.clock import iso
from appliance.media import metrics
from appliance.media.blocking import media_blocking
from appliance.media.jobs import JobResult, Verdict
from appliance.media.models import AttemptOutcome, Availability, FailureReason
from appliance.media.probe import NotAVideo, check_mp4_complete, make_thumbnail, probe_video
from appliance.media.repo import Stored
from appliance.media.space import NoSpace
from appliance.media.ssrf import IPAddress, UnresolvableHost, UrlRefused, check_url
from appliance.media.storage import StorageError, StorageUnavailable, info_key, thumbnail_key, video_key
from appliance.media.ytdlp import FailureKind, Progress, YtdlpError, download, resolve

if TYPE_CHECKING:
    from appliance.media.service import MediaService

log = logging.getLogger(__name__)
# fields of yt-dlp's info JSON too big or too volatile to keep in the sidecar
_DROP = {"formats", "requested_formats", "thumbnails", "http_headers", "requested_downloads", "automatic_captions",
         "subtitles", "heatmap", "_format_sort_fields"}
# retrying these reaches the same file or the same refused address again
_PERMANENT = {FailureReason.NOT_A_VIDEO, FailureReason.UNSUPPORTED, FailureReason.REFUSED}


def _failure_reason(kind: FailureKind) -> FailureReason:
    return FailureReason(kind.value)


class AttemptFailed(Exception):
    """An attempt failed for a classified reason."""

    def __init__(self, reason: FailureReason, message: str, *, outage: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        # the uplink or the storage went away: not the video's fault, the attempt is given back
        self.outage = outage or reason is FailureReason.UNREACHABLE


def metadata_from_info(info: dict[str, Any]) -> dict[str, Any]:
    """Video columns from a yt-dlp info JSON."""
    def text(key: str, limit: int) -> str | None:
        value = info.get(key)
        return str(value)[:limit] if value else None

    return {
        "extractor": text("extractor_key", 100) or text("extractor", 100),
        "external_id": text("id", 200),
        "title": text("title", 500),
        "description": text("description", 10_000),
        "channel": text("channel", 300) or text("uploader", 300),
        "duration_s": float(info["duration"]) if isinstance(info.get("duration"), int | float) else None,
        "width": info.get("width") if isinstance(info.get("width"), int) else None,
        "height": info.get("height") if isinstance(info.get("height"), int) else None,
        "format": text("format", 200),
    }


async def source_reachable(url: str, addresses: Sequence[IPAddress], timeout_s: float = 5.0) -> bool:
    """Whether a TCP connection to one of the URL's vetted addresses opens: False means the uplink is down.

    The addresses come from the SSRF check; connecting to the name again could reach another address.
    """
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout_s):
            for addr in addresses:
                try:
                    _reader, writer = await asyncio.open_connection(str(addr), port)
                    break
                except OSError:
                    continue
    except TimeoutError:
        return False
    if writer is None:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class Fetcher:
    """Runs download jobs for the service."""

    def __init__(self, service: MediaService) -> None:
        self.s = service

    def _later(self, seconds: float) -> str:
        return iso(self.s.clock.now() + timedelta(seconds=seconds))

    async def handle(self, video_id: int) -> JobResult:
        """Process one job and say whether to ack it or redeliver it later."""
        s = self.s
        row = await s.repo.get(video_id)
        if row is None or row["source_kind"] != "download":
            return JobResult(Verdict.ACK)
        if row["availability"] in (Availability.AVAILABLE.value, Availability.ERROR.value):
            return JobResult(Verdict.ACK)  # already stored, or waiting for a manual retry
        url = str(row["source_url"])
        try:
            addresses = await check_url(url, s.allowed_networks)
            reachable = await source_reachable(url, addresses)
        except UnresolvableHost:
            reachable = False  # no DNS is what an offline facility looks like: wait, do not fail
        except UrlRefused as exc:
            await s.set_state(video_id, Availability.ERROR, error=f"refused: {exc}")
            return JobResult(Verdict.ACK)
        if not reachable:
            msg = "source unreachable; waiting for the uplink (no attempt spent)"
            await s.repo.log_waiting(video_id, msg, self._later(s.settings.uplink_wait_s))
            await s.publish_state(video_id)
            return JobResult(Verdict.RETRY, s.settings.uplink_wait_s)
        try:
            await s.storage.check()
        except StorageUnavailable as exc:
            # no point fetching over the uplink what cannot be stored; a local S3 outage is not the video's fault
            msg = f"video storage unreachable; waiting for it (no attempt spent): {exc}"
            await s.repo.log_waiting(video_id, msg, self._later(s.settings.retry_delay_s), FailureReason.STORAGE)
            await s.publish_state(video_id)
            return JobResult(Verdict.RETRY, s.settings.retry_delay_s)
        except StorageError:
            pass  # S3 answers but refuses (credentials, bucket): the attempt fails as `storage` and spends
        if row["extractor"] is None and await self._expand_playlist(video_id, url):
            return JobResult(Verdict.ACK)
        attempt = await s.repo.start_attempt(video_id)
        await s.publish_state(video_id)
        started = time.monotonic()
        metrics.DOWNLOADS_ACTIVE.inc()
        try:
            await self._attempt(video_id, url)
        except AttemptFailed as exc:
            return await self._failed(video_id, attempt, exc)
        except asyncio.CancelledError:
            # shutdown killed yt-dlp: not the video's fault, so the attempt is given back before the job is
            await asyncio.shield(self._interrupted(video_id))
            raise
        finally:
            metrics.DOWNLOADS_ACTIVE.dec()
        metrics.DOWNLOAD_SECONDS.observe(time.monotonic() - started)
        metrics.DOWNLOADS.labels("succeeded").inc()
        await s.refresh_usage()  # attempt closed and video.available recorded with the video
        await s.publish_state(video_id)
        return JobResult(Verdict.ACK)

    async def _interrupted(self, video_id: int) -> None:
        s = self.s
        try:
            await s.repo.finish_attempt(video_id, AttemptOutcome.WAITING, FailureReason.FAILED,
                                        "interrupted by shutdown; the job is redelivered")
            await s.repo.refund_attempt(video_id)
            await s.repo.set_state(video_id, Availability.PENDING, error="interrupted by shutdown")
        except Exception:  # noqa: BLE001 - best effort while stopping; the redelivered job carries on anyway
            log.warning("could not record the interrupted download of video %d", video_id, exc_info=True)

    async def _expand_playlist(self, video_id: int, url: str) -> bool:
        """If the URL is a playlist, replace this row by one pending video per entry; True if it was."""
        s = self.s
        try:
            entries = await resolve(url, s.ytdlp)
        except YtdlpError:
            return False  # the download attempt reports the error properly
        if len(entries) == 1 and entries[0].url == url:
            return False
        for entry in entries:
            child, created = await s.repo.add_download(entry.url, None)
            if created:
                if entry.title:
                    await s.repo.set_metadata(child, {"title": entry.title[:500]})
                await s.copy_visibility(video_id, child)
                await s.queue(child, "initial")
                await s.publish_state(child)
        await s.repo.delete(video_id)
        await s.hub.emit({"type": "deleted", "video_id": video_id, "replaced_by_playlist": len(entries)})
        return True

    async def _attempt(self, video_id: int, url: str) -> None:
        s = self.s
        work = s.staging / f"job-{video_id}-{secrets.token_hex(4)}"
        try:
            try:
                s.space.check(await s.repo.used_bytes())
            except NoSpace as exc:
                raise AttemptFailed(FailureReason.NO_SPACE, str(exc)) from exc

            async def progress(p: Progress) -> None:
                await s.hub.emit({"type": "progress", "video_id": video_id, "percent": p.percent,
                                  "speed_bps": p.speed_bps, "eta_s": p.eta_s, "downloaded_bytes": p.downloaded_bytes,
                                  "total_bytes": p.total_bytes}, throttle_s=0.5)

            try:
                got = await download(url, work, s.ytdlp, progress)
            except YtdlpError as exc:
                raise AttemptFailed(_failure_reason(exc.kind), str(exc)) from exc
            try:
                probed = await probe_video(got.video)
                await media_blocking(check_mp4_complete, got.video)
            except NotAVideo as exc:
                raise AttemptFailed(FailureReason.NOT_A_VIDEO, str(exc)) from exc
            size = (await media_blocking(got.video.stat)).st_size
            try:
                s.space.check(await s.repo.used_bytes(), size)
            except NoSpace as exc:
                raise AttemptFailed(FailureReason.NO_SPACE, str(exc)) from exc
            meta = metadata_from_info(got.info)
            meta.update({"duration_s": meta["duration_s"] or probed.duration_s, "width": probed.width,
                         "height": probed.height})
            thumb = got.thumbnail
            if thumb is None:
                candidate = work / "frame.jpg"
                thumb = candidate if await make_thumbnail(got.video, candidate, at_s=probed.duration_s / 3) else None
            await s.repo.set_metadata(video_id, meta)
            info = {k: v for k, v in got.info.items() if k not in _DROP}
            await self.store(video_id, got.video, thumb, info)
        finally:
            await media_blocking(shutil.rmtree, work, True)

    async def store(self, video_id: int, video: Path, thumb: Path | None, info: dict[str, Any]) -> None:
        """Put the files into storage, then mark the row available; undo the files if that fails."""
        s = self.s
        try:
            stored = await s.storage.put_file(video_key(video_id), video, "video/mp4")
            tkey = None
            if thumb is not None:
                await s.storage.put_file(thumbnail_key(video_id), thumb, "image/jpeg")
                tkey = thumbnail_key(video_id)
            row = await s.repo.get(video_id)
            fields = s.sidecar_fields(row) if row is not None else {"id": video_id}
            sidecar = {"appliance": {**fields, "thumbnail_key": tkey}, "info": info}
            await s.storage.put_bytes(info_key(video_id), json.dumps(sidecar, default=str).encode(),
                                      "application/json")
            await s.repo.mark_available(video_id, Stored(video_key(video_id), stored.size, stored.etag, tkey))
        except StorageError as exc:
            await s.remove_files(video_id)
            raise AttemptFailed(FailureReason.STORAGE, f"storage failed: {exc}",
                                outage=isinstance(exc, StorageUnavailable)) from exc
        except BaseException:
            await asyncio.shield(s.remove_files(video_id))
            raise

    async def _failed(self, video_id: int, attempt: int, exc: AttemptFailed) -> JobResult:
        s = self.s
        reason, message = exc.reason, str(exc)
        metrics.DOWNLOADS.labels(reason.value).inc()
        if exc.outage:
            # the link or the storage dropped under us: not the video's fault, so the attempt is given back
            uplink = reason is FailureReason.UNREACHABLE
            wait = s.settings.uplink_wait_s if uplink else s.settings.retry_delay_s
            error = ("source unreachable; waiting for the uplink (no attempt spent)" if uplink
                     else f"{message}; waiting for the storage (no attempt spent)")
            await s.repo.finish_attempt(video_id, AttemptOutcome.WAITING, reason, message)
            await s.repo.refund_attempt(video_id)
            await s.set_state(video_id, Availability.PENDING, error=error, next_attempt_at=self._later(wait))
            return JobResult(Verdict.RETRY, wait)
        await s.repo.finish_attempt(video_id, AttemptOutcome.FAILED, reason, message)
        if reason in _PERMANENT or attempt >= s.settings.max_attempts:
            await s.set_state(video_id, Availability.ERROR, error=message)
            log.warning("video %d failed after %d attempt(s): %s", video_id, attempt, message)
            return JobResult(Verdict.ACK)
        delay = s.settings.retry_delay_s * attempt
        await s.set_state(video_id, Availability.PENDING, error=message, next_attempt_at=self._later(delay))
        return JobResult(Verdict.RETRY, delay)
