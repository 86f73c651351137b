"""Video storage: one interface, a local-disk and an S3 backend."""

from appliance.media.storage.base import (
    ObjectInfo,
    StorageError,
    StorageUnavailable,
    VideoStorage,
    info_key,
    thumbnail_key,
    video_key,
    video_prefix,
)

__all__ = [
    "ObjectInfo",
    "StorageError",
    "StorageUnavailable",
    "VideoStorage",
    "info_key",
    "thumbnail_key",
    "video_key",
    "video_prefix",
]
