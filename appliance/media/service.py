"""The video cache service: storage, queue, progress and the operations the API and CLI share."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

from appliance.bus.client import Bus
from appliance.config import Config
from appliance.core.clock import Clock
from appliance.db.database import Database
from appliance.media import metrics
from appliance.media.blocking import media_blocking
from appliance.media.jobs import enqueue
from appliance.media.models import Availability
from appliance.media.progress import ProgressHub
from appliance.media.repo import VideoRepo
from appliance.media.sendfile import OpenFiles
from appliance.media.settings import MediaSettings
from appliance.media.space import SpaceGuard
from appliance.media.ssrf import IPNetwork, allowed_networks
from appliance.media.storage import VideoStorage, video_prefix
from appliance.media.storage.disk import DiskStorage
from appliance.media.ytdlp import YtdlpOptions

log = logging.getLogger(__name__)
_SIDECAR_FIELDS = ("id", "source_kind", "source_url", "extractor", "external_id", "title", "description", "channel",
                   "duration_s", "width", "height", "format", "original_filename", "thumbnail_key", "created_at")


def build_storage(config: Config) -> VideoStorage:
    """The configured backend."""
    m: MediaSettings = config.media
    if m.backend == "s3":
        # Imported here: minio (and urllib3 under it) is about 0.3 s of start-up a disk-backed appliance never needs.
        from appliance.media.storage.s3 import S3Storage

        return S3Storage(endpoint=m.s3_endpoint, bucket=m.s3_bucket, access_key=m.s3_access_key,
                         secret_key=m.s3_secret_key, secure=m.s3_secure, region=m.s3_region or None,
                         part_size=m.s3_part_size_mb * 1024 * 1024, sse=m.s3_sse, timeout_s=m.s3_timeout_s)
    return DiskStorage(config.paths.content_root)


def ytdlp_options(m: MediaSettings) -> YtdlpOptions:
    """yt-dlp options from [media]."""
    cookies = m.cookies_file if str(m.cookies_file) not in ("", ".") else None
    return YtdlpOptions(format=m.format, cookies_file=cookies, timeout_s=float(m.download_timeout_s),
                        socket_timeout_s=float(m.socket_timeout_s), max_filesize_mb=m.max_filesize_mb)


class MediaService:
    """Everything the media routes, workers and commands need, built once per process."""

    def __init__(self, config: Config, db: Database, bus: Bus | None, clock: Clock,
                 storage: VideoStorage | None = None) -> None:
        self.config = config
        self.settings: MediaSettings = config.media
        self.db = db
        self.repo = VideoRepo(db)
        self._bus = bus
        self.clock = clock
        self.storage: VideoStorage = storage or build_storage(config)
        self.hub = ProgressHub()
        self.open_files = OpenFiles()
        self.ytdlp = ytdlp_options(self.settings)
        self.allowed_networks: list[IPNetwork] = allowed_networks(config)
        self.staging: Path = config.paths.data_dir / "media-staging"
        self.space = SpaceGuard(self.staging, self.settings.min_free_disk_mb, self.settings.cache_quota_mb)

    @property
    def bus(self) -> Bus:
        """The NATS client (absent in CLI commands that do not need it)."""
        if self._bus is None:
            raise RuntimeError("media service has no bus")
        return self._bus

    async def start(self) -> None:
        """Create staging and the storage root or bucket."""
        await media_blocking(lambda: self.staging.mkdir(parents=True, exist_ok=True))
        await self.storage.start()

    async def close(self) -> None:
        """Stop SSE streams and release storage."""
        await self.hub.close()
        self.open_files.close()
        await self.storage.close()

    # ---------------------------------------------------------------- state and events

    async def set_state(self, video_id: int, availability: Availability, *, error: str | None = None,
                        next_attempt_at: str | None = None) -> None:
        """Change the availability and tell the SSE listeners."""
        await self.repo.set_state(video_id, availability, error=error, next_attempt_at=next_attempt_at)
        await self.publish_state(video_id)

    async def publish_state(self, video_id: int) -> None:
        """Send the video's current state to every process's SSE listeners."""
        row = await self.repo.get(video_id)
        if row is None:
            return
        await self.hub.emit({"type": "state", "video_id": video_id, "availability": row["availability"],
                             "attempts": row["attempts"], "last_error": row["last_error"], "title": row["title"],
                             "next_attempt_at": row["next_attempt_at"]})

    # ---------------------------------------------------------------- operations

    async def add_url(self, url: str, added_by: int | None) -> tuple[int, bool]:
        """Insert a pending video for a checked URL and queue its download; (id, created)."""
        video_id, created = await self.repo.add_download(url, added_by)
        if created:
            await self.queue(video_id, "initial")
            await self.publish_state(video_id)
        return video_id, created

    async def queue(self, video_id: int, generation: str) -> None:
        """Publish the download job and remember that it was published."""
        await enqueue(self.bus, video_id, generation)
        await self.repo.mark_queued(video_id)

    async def retry(self, video_id: int) -> None:
        """Manual retry of a video in `error`: a fresh attempt budget and a new job."""
        await self.repo.reset_for_retry(video_id)
        await self.queue(video_id, f"retry-{self.clock.iso_now()}")
        await self.publish_state(video_id)

    async def delete(self, video_id: int) -> None:
        """Delete the row first (nothing can play it any more), then its files."""
        await self.repo.delete(video_id)
        await self.remove_files(video_id)
        await self.refresh_usage()
        await self.hub.emit({"type": "deleted", "video_id": video_id})

    async def refresh_usage(self) -> None:
        """Update the cache-size gauge."""
        metrics.CACHE_BYTES.set(await self.repo.used_bytes())

    async def remove_files(self, video_id: int) -> None:
        """Remove a video's stored files; failures are left to the orphan sweeper."""
        folder = self.storage.local_path(video_prefix(video_id).rstrip("/"))
        if folder is not None:
            self.open_files.forget(folder)
        try:
            await self.storage.delete_prefix(video_prefix(video_id))
        except Exception:  # noqa: BLE001 - the sweeper removes what is left
            log.warning("could not remove files of video %d; the sweeper will", video_id, exc_info=True)

    async def copy_visibility(self, src: int, dest: int) -> None:
        """A playlist's entries inherit the visibility given to the playlist row."""
        facilities = await self.repo.facilities_of(src)
        if facilities:
            await self.repo.set_visibility(dest, facilities, scope=None)

    def sidecar_fields(self, row: sqlite3.Row) -> dict[str, Any]:
        """The row fields written to info.json, from which `video reindex` rebuilds the row."""
        return {k: row[k] for k in _SIDECAR_FIELDS}
