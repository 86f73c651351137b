"""The free-space and quota guard."""

import shutil
from pathlib import Path

import pytest

from appliance.media.space import MIB, NoSpace, SpaceGuard


def test_quota_and_free_space(tmp_path: Path) -> None:
    guard = SpaceGuard(tmp_path / "not-yet-created", min_free_mb=1, quota_mb=10)
    guard.check(used_bytes=5 * MIB, incoming_bytes=5 * MIB)  # exactly at the quota is fine
    with pytest.raises(NoSpace, match="cache_quota_mb=10"):
        guard.check(used_bytes=5 * MIB, incoming_bytes=5 * MIB + 1)
    unlimited = SpaceGuard(tmp_path, min_free_mb=1, quota_mb=0)
    unlimited.check(used_bytes=10**15)
    with pytest.raises(NoSpace, match="min_free_disk_mb"):
        SpaceGuard(tmp_path, min_free_mb=10**12, quota_mb=0).check(used_bytes=0)
    free_mb = shutil.disk_usage(tmp_path).free // MIB
    with pytest.raises(NoSpace, match="min_free_disk_mb"):  # the incoming file counts against free space
        SpaceGuard(tmp_path, min_free_mb=1, quota_mb=0).check(used_bytes=0, incoming_bytes=(free_mb + 10) * MIB)
