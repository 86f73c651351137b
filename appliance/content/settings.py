"""Configuration section [content]: the ZIM library."""

from dataclasses import dataclass


@dataclass(frozen=True)
class ContentSettings:
    """[content]: ZIM discovery, caches and limits."""
