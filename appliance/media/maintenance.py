"""Orphan sweeper and `video reindex`: keep storage and the database in agreement."""

from __future__ import annotations

import json
import logging
import re
import shutil
import sqlite3
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from appliance.media import metrics
from appliance.media.blocking import media_blocking
from appliance.media.models import Availability
from appliance.media.service import MediaService
from appliance.media.storage import ObjectInfo, StorageError, info_key, video_key, video_prefix
from appliance.media.storage.base import THUMBNAIL_NAME

log = logging.getLogger(__name__)
_VIDEO_DIR = re.compile(r"^videos/(\d+)/")


def _group(objects: list[ObjectInfo]) -> dict[int, list[ObjectInfo]]:
    by_id: dict[int, list[ObjectInfo]] = defaultdict(list)
    for obj in objects:
        match = _VIDEO_DIR.match(obj.key)
        if match:
            by_id[int(match.group(1))].append(obj)
    return by_id


async def sweep(svc: MediaService, *, in_flight: set[int] | None = None) -> int:
    """Remove stored files no row owns (and stale temp files), older than the grace period; return count."""
    grace = svc.settings.sweep_grace_s
    cutoff = time.time() - grace
    removed = 0
    rows = {int(r["id"]): r for r in await svc.db.fetchall("SELECT id, availability, storage_key FROM videos")}
    for video_id, objects in _group(await svc.storage.list_keys("videos/")).items():
        if max(o.mtime for o in objects) > cutoff or video_id in (in_flight or set()):
            continue
        row = rows.get(video_id)
        owned = row is not None and (row["storage_key"] is not None
                                     or row["availability"] == Availability.PROCESSING.value)
        if not owned:
            await svc.storage.delete_prefix(video_prefix(video_id))
            removed += len(objects)
            continue
        for obj in objects:
            if ".tmp-" in obj.key.rsplit("/", 1)[-1]:  # a rename that never happened (crash mid-store)
                await svc.storage.delete_prefix(obj.key)
                removed += 1
    removed += await media_blocking(_sweep_staging, svc, cutoff)
    if removed:
        metrics.SWEPT.inc(removed)
        log.info("orphan sweeper removed %d stale file(s)", removed)
    return removed


def _sweep_staging(svc: MediaService, cutoff: float) -> int:
    removed = 0
    if not svc.staging.is_dir():
        return 0
    for entry in svc.staging.iterdir():
        try:
            if entry.stat().st_mtime > cutoff:
                continue
        except FileNotFoundError:
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += 1
    return removed


@dataclass(frozen=True)
class ReindexReport:
    """What `video reindex` did."""

    restored: int
    updated: int
    skipped: list[str]


_FIELDS = ("source_kind", "source_url", "extractor", "external_id", "title", "description", "channel",
           "duration_s", "width", "height", "format", "original_filename")


async def reindex(svc: MediaService) -> ReindexReport:
    """Rebuild video rows from the sidecars in storage (hidden until made visible again)."""
    restored = updated = 0
    skipped: list[str] = []
    for video_id, objects in sorted(_group(await svc.storage.list_keys("videos/")).items()):
        names = {o.key.rsplit("/", 1)[-1]: o for o in objects}
        video = names.get("video.mp4")
        if video is None or "info.json" not in names:
            skipped.append(f"{video_id}: no video.mp4 or info.json")
            continue
        try:
            sidecar = json.loads(await svc.storage.get_bytes(info_key(video_id)))
            fields: dict[str, Any] = sidecar["appliance"]
        except (StorageError, ValueError, KeyError, TypeError) as exc:
            skipped.append(f"{video_id}: unreadable info.json ({exc})")
            continue
        values = {k: fields.get(k) for k in _FIELDS}
        if values["source_kind"] not in ("download", "upload") or (
                (values["source_kind"] == "download") != bool(values["source_url"])):
            skipped.append(f"{video_id}: sidecar has no valid source")
            continue
        thumb = video_prefix(video_id) + THUMBNAIL_NAME if THUMBNAIL_NAME in names else None
        exists = await svc.repo.get(video_id) is not None
        try:
            await _upsert(svc, video_id, values, video, thumb)
        except sqlite3.IntegrityError as exc:
            skipped.append(f"{video_id}: clashes with another video ({exc})")
            continue
        if exists:
            updated += 1
        else:
            restored += 1
    return ReindexReport(restored, updated, skipped)


async def _upsert(svc: MediaService, video_id: int, values: dict[str, Any], video: ObjectInfo,
                  thumb: str | None) -> None:
    """Insert or refresh one row from its sidecar."""
    cols = ", ".join(_FIELDS)
    sets = ", ".join(f"{k} = excluded.{k}" for k in _FIELDS)
    await svc.db.execute(
        f"INSERT INTO videos (id, {cols}, availability, storage_key, size_bytes, etag, thumbnail_key,"
        f" available_at) VALUES (?, {', '.join('?' * len(_FIELDS))}, 'available', ?, ?, ?, ?,"
        f" strftime('%Y-%m-%dT%H:%M:%fZ','now'))"
        f" ON CONFLICT (id) DO UPDATE SET {sets}, availability = 'available', storage_key = excluded.storage_key,"
        " size_bytes = excluded.size_bytes, etag = excluded.etag, thumbnail_key = excluded.thumbnail_key,"
        " last_error = NULL, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')",
        (video_id, *values.values(), video_key(video_id), video.size, video.etag, thumb),
    )
