"""Per-request HTTP metrics, buffered in memory and written to prometheus-client once a second.

In multiprocess mode every increment takes a lock, checks the pid and writes an mmap'ed file; three of
those per request cost about a tenth of a /healthz request. Buffering turns them into a few writes per
route per second. A scrape flushes the answering process first; other processes lag by at most the
flush interval, which Prometheus tolerates by design.
"""

from __future__ import annotations

import asyncio
import math
from bisect import bisect_left
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from appliance.observability.metrics import HTTP_LATENCY, HTTP_REQUESTS, LATENCY_BUCKETS

FLUSH_INTERVAL_S = 1.0
_BOUNDS = (*LATENCY_BUCKETS, math.inf)


class HttpMetricsBuffer:
    """Counts and latency buckets per (method, route, status) since the last flush."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str, str, str], list] = {}  # type: ignore[type-arg]
        self._counts: dict[Any, float] = {}

    def inc(self, child: Any, amount: float = 1.0) -> None:
        """Add to a labelled counter child at the next flush (for counters bumped on every request)."""
        self._counts[child] = self._counts.get(child, 0.0) + amount

    def observe(self, method: str, route: str, status: str, seconds: float) -> None:
        """Record one request (cheap: dictionary and list updates only)."""
        key = (method, route, status)
        entry = self._pending.get(key)
        if entry is None:
            entry = self._pending[key] = [0, 0.0, [0] * len(_BOUNDS)]
        entry[0] += 1
        entry[1] += seconds
        entry[2][bisect_left(_BOUNDS, seconds)] += 1

    def flush(self) -> None:
        """Write what was recorded into the prometheus-client metrics."""
        pending, self._pending = self._pending, {}
        counts, self._counts = self._counts, {}
        for child, amount in counts.items():
            child.inc(amount)
        for (method, route, status), (count, total, buckets) in pending.items():
            HTTP_REQUESTS.labels(method, route, status).inc(count)
            child = HTTP_LATENCY.labels(method, route)
            # Histogram has no bulk observe; its children store one non-cumulative value per bucket and a
            # sum, exactly what observe() increments (a test pins this against observe()).
            child._sum.inc(total)  # noqa: SLF001
            for index, hits in enumerate(buckets):
                if hits:
                    child._buckets[index].inc(hits)  # noqa: SLF001


BUFFER = HttpMetricsBuffer()


async def http_metrics_ctx(app: web.Application) -> AsyncIterator[None]:
    """Flush the buffer every second in this process, and once more at shutdown."""
    from appliance.keys import TASKS

    async def loop() -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            BUFFER.flush()

    app[TASKS].spawn("http-metrics-flush", loop)
    yield
    BUFFER.flush()
