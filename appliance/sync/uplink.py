"""Per-provider uplink monitor and gate: probe cheaply, back off with jitter, pause work while down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable

from appliance.connectors.errors import AuthFailed, NotPermitted, Throttled, UpstreamError
from appliance.sync.limit import AdaptiveLimit
from appliance.sync.model import RuntimeState, Uplink

log = logging.getLogger(__name__)
StateSink = Callable[[RuntimeState, Uplink, str | None], Awaitable[None]]


def next_backoff(current: float, ceiling: float, rng: random.Random) -> float:
    """Double the wait up to the ceiling, with ±50% jitter so many appliances do not probe in step."""
    return min(ceiling, current * 2) * (0.5 + rng.random())


class UplinkGate:
    """Shared by the monitor and the workers of one provider: may work proceed now?"""

    def __init__(
        self,
        provider_id: int,
        probe: Callable[[float], Awaitable[None]],
        sink: StateSink,
        *,
        probe_timeout: float,
        probe_interval: float,
        backoff_initial: float,
        backoff_max: float,
        concurrency: int = 8,
        seed: int | None = None,
    ) -> None:
        self.provider_id = provider_id
        self._probe = probe
        self._sink = sink
        self.probe_timeout, self.probe_interval = probe_timeout, probe_interval
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.uplink = Uplink.UNKNOWN
        self.runtime = RuntimeState.RETRYING
        self._open = asyncio.Event()  # set while up and ready
        self._suspect = asyncio.Event()  # a worker saw a transient failure
        self._pause_until = 0.0
        self._throttle_wait = 0.0
        self._rng = random.Random(seed)
        self.probes = 0
        self.limit = AdaptiveLimit(concurrency)
        self.auth_error: str | None = None

    @property
    def is_open(self) -> bool:
        """True while work may proceed."""
        return self._open.is_set()

    async def wait_open(self, *, fail_on_auth: bool = False) -> None:
        """Block while the uplink is down, credentials failed, or upstream asked us to slow down.

        With fail_on_auth, raise AuthFailed instead of waiting for new credentials (a run ends; a
        pusher, which holds queued records, waits).
        """
        while True:
            if fail_on_auth:
                if self.runtime is RuntimeState.AUTH_FAILED:
                    raise AuthFailed(self.auth_error or "credentials rejected")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._open.wait(), 0.5)
                if not self._open.is_set():
                    continue
            await self._open.wait()
            delay = self._pause_until - asyncio.get_running_loop().time()
            if delay <= 0:
                return
            await asyncio.sleep(delay)

    def report_transient(self, error: UpstreamError) -> None:
        """A worker's request failed as transient: close the gate and let the monitor probe."""
        if self._open.is_set():
            log.warning("provider %s: uplink lost (%s); pausing pushes and pulls", self.provider_id, error)
        self._open.clear()
        self._suspect.set()

    def report_throttled(self, error: Throttled) -> None:
        """Upstream throttled us: pause every worker of this provider, longer if it keeps happening."""
        now = asyncio.get_running_loop().time()
        if now < self._pause_until:
            return  # another request of the same burst: already paused, do not escalate
        self.limit.decrease()
        self._throttle_wait = min(max(error.retry_after, self._throttle_wait * 2), 10.0)
        self._pause_until = now + self._throttle_wait

    def report_success(self, remaining: float | None = None, floor: float = 0.0) -> None:
        """A request went through; a rate-limit budget under `floor` still means slow down."""
        self._throttle_wait = self._throttle_wait / 2 if self._throttle_wait > 0.5 else 0.0
        if remaining is not None and remaining < floor:
            self.limit.decrease()
        else:
            self.limit.increase()

    def report_auth_failed(self, error: AuthFailed) -> None:
        """A 401 with WWW-Authenticate: stop until credentials change."""
        self.auth_error = str(error)
        self._open.clear()
        self._suspect.set()

    async def run(self) -> None:
        """Probe now, then while up every probe_interval (or at once when a worker suspects the link)."""
        backoff = self.backoff_initial
        while True:
            outcome = await self._probe_once()
            if outcome is RuntimeState.READY:
                backoff = self.backoff_initial
                self._suspect.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._suspect.wait(), self.probe_interval)
                continue
            if outcome is RuntimeState.AUTH_FAILED:
                return  # the engine restarts this provider when its credentials change
            await asyncio.sleep(backoff)
            backoff = next_backoff(backoff, self.backoff_max, self._rng)

    async def _probe_once(self) -> RuntimeState:
        self.probes += 1
        try:
            await self._probe(self.probe_timeout)
        except AuthFailed as exc:
            await self._set(RuntimeState.AUTH_FAILED, Uplink.UP, f"credentials rejected: {exc}")
            return RuntimeState.AUTH_FAILED
        except (Throttled, NotPermitted):
            pass  # it answered: the link is up, the workers handle throttling and permissions
        except UpstreamError as exc:
            await self._set(RuntimeState.RETRYING, Uplink.DOWN, str(exc))
            return RuntimeState.RETRYING
        await self._set(RuntimeState.READY, Uplink.UP, None)
        return RuntimeState.READY

    async def _set(self, runtime: RuntimeState, uplink: Uplink, error: str | None) -> None:
        changed = (runtime, uplink) != (self.runtime, self.uplink)
        if changed:
            if runtime is RuntimeState.READY:
                log.info("provider %s: uplink up, draining", self.provider_id)
            elif runtime is RuntimeState.AUTH_FAILED:
                log.error("provider %s: %s; paused until credentials change", self.provider_id, error)
            elif self.uplink is not Uplink.DOWN:
                log.warning("provider %s: uplink down (%s); backing off", self.provider_id, error)
        self.runtime, self.uplink = runtime, uplink
        if runtime is RuntimeState.READY:
            self._open.set()
        else:
            self._open.clear()
        if changed:
            await self._sink(runtime, uplink, error)
