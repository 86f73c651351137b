"""Configuration section [sync]: store-and-forward sync with LMS providers."""

from dataclasses import dataclass


@dataclass(frozen=True)
class SyncSettings:
    """[sync]: scheduler, uplink monitor, drain limits, leaf node."""
