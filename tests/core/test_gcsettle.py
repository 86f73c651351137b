"""settle_gc freezes what start-up made and raises the first-generation threshold."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from appliance.core.gcsettle import GEN0_THRESHOLD, settle_gc


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_settle_gc(restore_gc: None) -> None:
    _, gen1, gen2 = gc.get_threshold()
    settle_gc()
    assert gc.get_threshold() == (GEN0_THRESHOLD, gen1, gen2)
    assert gc.get_freeze_count() > 1000  # the test process's modules and objects are out of the collector's way
    assert gc.isenabled()
