"""Video states and the JSON shape of a video."""

from __future__ import annotations

import sqlite3
from enum import StrEnum
from typing import Any


class Availability(StrEnum):
    """Where a video is in its life; the values are what the database stores."""

    PENDING = "pending"
    PROCESSING = "processing"
    AVAILABLE = "available"
    ERROR = "error"


class SourceKind(StrEnum):
    """How a video reached the cache."""

    DOWNLOAD = "download"
    UPLOAD = "upload"


class AttemptOutcome(StrEnum):
    """Result of one download attempt."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    WAITING = "waiting"


class FailureReason(StrEnum):
    """Why an attempt failed (stored in video_download_attempts.failure_kind)."""

    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    NOT_FOUND = "not_found"
    UNSUPPORTED = "unsupported"
    NOT_A_VIDEO = "not_a_video"
    NO_SPACE = "no_space"
    STORAGE = "storage"
    FAILED = "failed"
    REFUSED = "refused"  # the egress proxy refused a target (internal address or odd port): permanent


def video_json(row: sqlite3.Row, *, facility_ids: list[int] | None = None,
               progress: dict[str, Any] | None = None) -> dict[str, Any]:
    """The API representation of a video row."""
    out: dict[str, Any] = {
        "id": row["id"],
        "source_kind": row["source_kind"],
        "source_url": row["source_url"],
        "extractor": row["extractor"],
        "external_id": row["external_id"],
        "title": row["title"],
        "description": row["description"],
        "channel": row["channel"],
        "duration_s": row["duration_s"],
        "width": row["width"],
        "height": row["height"],
        "format": row["format"],
        "size_bytes": row["size_bytes"],
        "availability": row["availability"],
        "attempts": row["attempts"],
        "last_error": row["last_error"],
        "next_attempt_at": row["next_attempt_at"],
        "has_thumbnail": row["thumbnail_key"] is not None,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "available_at": row["available_at"],
        "stream_url": f"/videos/{row['id']}/stream",
        "thumbnail_url": f"/videos/{row['id']}/thumbnail" if row["thumbnail_key"] else None,
        "progress": progress,
    }
    if facility_ids is not None:
        out["facility_ids"] = facility_ids
    return out
