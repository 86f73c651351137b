"""Free-space and quota guard for the video cache."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024


class NoSpace(Exception):
    """A download or upload is refused for lack of space; the message says which limit."""


@dataclass(frozen=True)
class SpaceGuard:
    """Refuse new writes below `min_free_mb` free on the staging disk or above `quota_mb` cached."""

    path: Path
    min_free_mb: int
    quota_mb: int  # 0 = no quota

    def check(self, used_bytes: int, incoming_bytes: int = 0) -> None:
        """Raise NoSpace if storing `incoming_bytes` more would break a limit."""
        free = shutil.disk_usage(self._existing(self.path)).free
        if free - incoming_bytes < self.min_free_mb * MIB:
            raise NoSpace(
                f"free disk space {free // MIB} MiB is below media.min_free_disk_mb={self.min_free_mb}"
            )
        if self.quota_mb and used_bytes + incoming_bytes > self.quota_mb * MIB:
            raise NoSpace(
                f"video cache uses {used_bytes // MIB} MiB; media.cache_quota_mb={self.quota_mb} would be exceeded"
            )

    @staticmethod
    def _existing(path: Path) -> Path:
        while not path.exists() and path.parent != path:
            path = path.parent
        return path
