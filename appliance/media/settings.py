"""Configuration section [media]: the video cache."""

from dataclasses import dataclass


@dataclass(frozen=True)
class MediaSettings:
    """[media]: downloads, storage backend, uploads."""
