"""SingleFlight: concurrent callers of one key share one load; a cancelled caller does not cancel it."""

from __future__ import annotations

import asyncio

import pytest

from appliance.core.singleflight import SingleFlight


async def test_concurrent_callers_share_one_load() -> None:
    flight: SingleFlight[int] = SingleFlight()
    calls = 0
    gate = asyncio.Event()

    async def load() -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        return 42

    waiters = [asyncio.ensure_future(flight.run("k", load)) for _ in range(25)]
    other = asyncio.ensure_future(flight.run("other", load))
    await asyncio.sleep(0.01)
    assert calls == 2 and len(flight) == 2
    gate.set()
    assert await asyncio.gather(*waiters, other) == [42] * 26
    assert len(flight) == 0
    assert await flight.run("k", load) == 42  # finished loads are not remembered: that is the cache's job
    assert calls == 3


async def test_a_cancelled_caller_leaves_the_load_to_the_others() -> None:
    flight: SingleFlight[str] = SingleFlight()
    gate = asyncio.Event()

    async def load() -> str:
        await gate.wait()
        return "row"

    first = asyncio.ensure_future(flight.run("k", load))
    second = asyncio.ensure_future(flight.run("k", load))
    await asyncio.sleep(0.01)
    first.cancel()
    gate.set()
    assert await second == "row"
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_a_failed_load_fails_every_waiter_and_is_retried_next_time() -> None:
    flight: SingleFlight[int] = SingleFlight()
    attempts = 0

    async def load() -> int:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0)
        if attempts == 1:
            raise OSError("database is locked")
        return 1

    results = await asyncio.gather(flight.run("k", load), flight.run("k", load), return_exceptions=True)
    assert [type(r) for r in results] == [OSError, OSError]
    assert await flight.run("k", load) == 1
