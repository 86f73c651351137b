"""Video states and the JSON shape of a video."""

from __future__ import annotations

import sqlite3
from enum import StrEnum
from typing import Any

from appliance.web.openapi import BOOL, ID, INT, NUM, STR, TIME, arr, nullable, obj


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


VIDEO_SCHEMA = obj(
    "id", "source_kind", "availability", "attempts", "has_thumbnail", "stream_url",
    id=ID, source_kind={"enum": ["download", "upload"]}, source_url=nullable(STR), extractor=nullable(STR),
    external_id=nullable(STR), title=nullable(STR), description=nullable(STR), channel=nullable(STR),
    duration_s=nullable(NUM), width=nullable(INT), height=nullable(INT), format=nullable(STR),
    size_bytes=nullable(INT), availability={"enum": ["pending", "processing", "available", "error"]}, attempts=INT,
    last_error=nullable(STR), next_attempt_at=nullable(TIME), has_thumbnail=BOOL, created_at=TIME,
    updated_at=nullable(TIME), available_at=nullable(TIME), stream_url=STR, thumbnail_url=nullable(STR),
    progress=nullable({"type": "object"}), facility_ids=arr(ID),
    download_attempts=arr(obj("attempt", "outcome", attempt=INT, outcome=STR, failure_kind=nullable(STR),
                              error=nullable(STR), started_at=nullable(TIME), finished_at=nullable(TIME))),
)
"""A video as the API shows it (facility_ids, download_attempts and progress for staff)."""


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
