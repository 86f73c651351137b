"""Named thread pools: work runs off the loop, and a pool declared niced runs its threads niced."""

import os
import threading
from collections.abc import Iterator

import pytest

from appliance.core import blocking


def _thread_niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.fixture
def pool_names() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:  # pools are per process: leave none of this test's behind
        pool = blocking._pools.pop(name, None)  # noqa: SLF001
        if pool is not None:
            pool.shutdown(wait=True)


async def test_niced_pool_runs_its_work_at_that_niceness(pool_names: list[str]) -> None:
    base = os.getpriority(os.PRIO_PROCESS, 0)
    pool_names += ["test-niced", "test-plain"]
    blocking.register_pool("test-niced", 2, niceness=min(19, base + 7))
    blocking.register_pool("test-plain", 2)
    niced = {await blocking.run_blocking("test-niced", _thread_niceness) for _ in range(6)}
    plain = await blocking.run_blocking("test-plain", _thread_niceness)
    assert niced == {min(19, base + 7)}
    assert plain == base
    assert _thread_niceness() == base  # the event loop's thread is untouched


async def test_registering_after_first_use_changes_nothing(pool_names: list[str]) -> None:
    base = os.getpriority(os.PRIO_PROCESS, 0)
    pool_names.append("test-used")
    assert await blocking.run_blocking("test-used", _thread_niceness) == base
    blocking.register_pool("test-used", 1, niceness=min(19, base + 5))
    assert await blocking.run_blocking("test-used", _thread_niceness) == base
