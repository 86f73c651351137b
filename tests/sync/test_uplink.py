"""Uplink gate: jittered backoff while down, pause without probing storms, adaptive concurrency."""

import asyncio
import random

from appliance.connectors.errors import AuthFailed, Throttled, Transient
from appliance.sync.limit import AdaptiveLimit
from appliance.sync.model import RuntimeState, Uplink
from appliance.sync.uplink import UplinkGate, next_backoff


def test_backoff_doubles_with_jitter_and_a_ceiling():
    rng = random.Random(1)
    waits, current = [], 1.0
    for _ in range(12):
        current = next_backoff(current, 60.0, rng)
        waits.append(current)
    assert all(0 < w <= 90.0 for w in waits)  # ceiling 60 with at most +50% jitter
    assert max(waits) > 30
    assert len({round(w, 3) for w in waits}) == len(waits)  # jitter: no two appliances in lockstep


async def test_gate_closes_while_down_and_reopens_when_probe_succeeds():
    answers = [Transient("refused")] * 3 + [None] * 100
    states: list[tuple[RuntimeState, Uplink]] = []

    async def probe(timeout: float) -> None:
        answer = answers.pop(0)
        if answer is not None:
            raise answer

    async def sink(runtime, uplink, error) -> None:
        states.append((runtime, uplink))

    gate = UplinkGate(1, probe, sink, probe_timeout=1, probe_interval=30, backoff_initial=0.01, backoff_max=0.05)
    task = asyncio.ensure_future(gate.run())
    try:
        await asyncio.wait_for(gate.wait_open(), 5)
        assert gate.probes == 4
        assert states == [(RuntimeState.RETRYING, Uplink.DOWN), (RuntimeState.READY, Uplink.UP)]
        gate.report_transient(Transient("reset"))  # a worker saw the link drop: probe at once, not in 30 s
        assert not gate.is_open
        await asyncio.wait_for(gate.wait_open(), 5)
        assert gate.probes == 5
    finally:
        task.cancel()


async def test_auth_failure_stops_probing_and_fails_runs():
    async def probe(timeout: float) -> None:
        raise AuthFailed("Invalid access token.")

    async def sink(runtime, uplink, error) -> None:
        return None

    gate = UplinkGate(1, probe, sink, probe_timeout=1, probe_interval=30, backoff_initial=0.01, backoff_max=0.05)
    await asyncio.wait_for(gate.run(), 5)  # returns: nothing to do until credentials change
    assert gate.runtime is RuntimeState.AUTH_FAILED
    try:
        await asyncio.wait_for(gate.wait_open(fail_on_auth=True), 5)
        raise AssertionError("should have raised")
    except AuthFailed:
        pass


async def test_throttling_halves_concurrency_and_success_grows_it_back():
    async def probe(timeout: float) -> None:
        return None

    async def sink(runtime, uplink, error) -> None:
        return None

    gate = UplinkGate(
        1, probe, sink, probe_timeout=1, probe_interval=30, backoff_initial=0.01, backoff_max=0.05, concurrency=8
    )
    gate.report_throttled(Throttled(0.05))
    gate.report_throttled(Throttled(0.05))  # same burst: no further escalation
    assert gate.limit.limit == 4
    for _ in range(40):
        gate.report_success(remaining=500.0, floor=100.0)
    assert gate.limit.limit == 8
    gate.report_success(remaining=20.0, floor=100.0)  # budget nearly spent: slow down before a 403
    assert gate.limit.limit == 4


async def test_adaptive_limit_admits_at_most_limit():
    limit = AdaptiveLimit(3)
    limit.decrease()
    peak = 0

    async def worker() -> None:
        nonlocal peak
        async with limit:
            peak = max(peak, limit.active)
            await asyncio.sleep(0.01)

    await asyncio.gather(*(worker() for _ in range(10)))
    assert peak == 1
