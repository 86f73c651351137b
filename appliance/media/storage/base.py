"""The storage interface shared by the disk and S3 backends, and the key layout."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# Keys are built only from these parts, never from a URL or an uploaded name.
_KEY_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# A temporary name (`.video.mp4.tmp-<token>`): a file being renamed into place on disk, an unfinished multipart
# upload on S3. Listed so the orphan sweeper sees them, and accepted as the last part of a key to delete them.
TMP_MARK = ".tmp-"
_TMP_PART = re.compile(r"^\.[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.tmp-[A-Za-z0-9-]{1,64}$")

VIDEO_NAME = "video.mp4"
INFO_NAME = "info.json"
THUMBNAIL_NAME = "thumbnail.jpg"


class StorageError(Exception):
    """A storage operation failed (bad key, missing object, backend error)."""


class StorageUnavailable(StorageError):
    """The backend cannot be reached (S3 down); the caller may retry later."""


def check_key(key: str) -> str:
    """Return `key` if every part is a plain name; raise StorageError otherwise (no `..`, no absolute)."""
    parts = key.split("/")
    if _TMP_PART.match(parts[-1]) and ".." not in parts[-1]:
        parts = parts[:-1]
    if not parts or any(not _KEY_PART.match(p) or p in {".", ".."} or ".." in p for p in parts):
        raise StorageError(f"invalid storage key {key!r}")
    return key


def is_temporary(key: str) -> bool:
    """Whether the key's last part is a temporary name."""
    return bool(_TMP_PART.match(key.rsplit("/", 1)[-1]))


def video_prefix(video_id: int) -> str:
    """Folder of one video: `videos/<id>/`."""
    return f"videos/{int(video_id)}/"


def video_key(video_id: int) -> str:
    """Key of a video's mp4."""
    return video_prefix(video_id) + VIDEO_NAME


def info_key(video_id: int) -> str:
    """Key of a video's info JSON sidecar."""
    return video_prefix(video_id) + INFO_NAME


def thumbnail_key(video_id: int) -> str:
    """Key of a video's thumbnail."""
    return video_prefix(video_id) + THUMBNAIL_NAME


@dataclass(frozen=True)
class ObjectInfo:
    """Size, entity tag and modification time (epoch seconds) of a stored object."""

    key: str
    size: int
    etag: str
    mtime: float


class VideoStorage(Protocol):
    """Where videos, sidecars and thumbnails live."""

    name: str

    async def start(self) -> None:
        """Prepare the backend (create the root folder or bucket)."""

    async def close(self) -> None:
        """Release resources."""

    async def check(self) -> None:
        """Raise StorageUnavailable unless the backend can be used right now (a cheap probe)."""

    async def put_file(self, key: str, src: Path, content_type: str) -> ObjectInfo:
        """Store a local file under `key` atomically (readers never see a partial object)."""

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> ObjectInfo:
        """Store a small object (sidecars)."""

    async def get_bytes(self, key: str) -> bytes:
        """Read a small object whole."""

    async def stat(self, key: str) -> ObjectInfo | None:
        """Object metadata, or None if absent."""

    def read_range(self, key: str, start: int, length: int) -> AsyncGenerator[bytes, None]:
        """Stream `length` bytes from `start`; the first chunk comes only once the backend has answered.

        Close the generator (`aclose`) when stopping early: that releases the backend's response at once.
        """

    def local_path(self, key: str) -> Path | None:
        """A file path for zero-copy sendfile, when the backend is a local disk."""

    async def presigned_url(self, key: str, expires_s: int) -> str | None:
        """A short-lived direct URL, when the backend supports it."""

    async def delete_prefix(self, prefix: str) -> None:
        """Remove every object under `prefix` (and unfinished uploads: temporary names)."""

    async def list_keys(self, prefix: str) -> list[ObjectInfo]:
        """All objects under `prefix`, temporary names included (the sweeper removes stale ones)."""
