"""Live download progress and state changes, shared by every process over core NATS, fanned out to SSE."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from nats.aio.msg import Msg

from appliance.bus import subjects
from appliance.bus.client import Bus

log = logging.getLogger(__name__)
_QUEUE_SIZE = 256


class ProgressHub:
    """The latest progress per video in this process, and the SSE subscribers waiting for events."""

    def __init__(self) -> None:
        self.current: dict[int, dict[str, Any]] = {}
        self._subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._last_sent: dict[int, float] = {}
        self._sub: Any = None
        self._bus: Bus | None = None

    async def attach(self, bus: Bus) -> None:
        """Receive every process's events (workers too, so SSE and GET work on any of them)."""
        self._bus = bus
        self._sub = await bus.nc.subscribe(subjects.media_progress(), cb=self._on_msg)

    async def _on_msg(self, msg: Msg) -> None:
        try:
            event = json.loads(msg.data)
        except ValueError:
            return
        if isinstance(event, dict):
            self.deliver(event)

    def deliver(self, event: dict[str, Any]) -> None:
        """Update the snapshot and hand the event to every subscriber (slow ones are dropped)."""
        vid = int(event.get("video_id", 0))
        if event.get("type") == "progress":
            self.current[vid] = {k: event.get(k) for k in
                                 ("percent", "speed_bps", "eta_s", "downloaded_bytes", "total_bytes")}
        elif event.get("type") == "state" and event.get("availability") != "processing":
            self.current.pop(vid, None)
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                # a client that does not read must not hold memory; it reconnects and gets a snapshot
                self._subscribers.discard(queue)
                _end(queue)

    async def emit(self, event: dict[str, Any], *, throttle_s: float = 0.0) -> None:
        """Publish an event to all processes (locally only when NATS is down)."""
        vid = int(event.get("video_id", 0))
        if throttle_s:
            now = time.monotonic()
            if now - self._last_sent.get(vid, 0.0) < throttle_s and event.get("percent") != 100.0:
                return
            self._last_sent[vid] = now
        data = json.dumps(event, separators=(",", ":")).encode()
        if self._bus is not None and self._bus.connected:
            try:
                await self._bus.nc.publish(subjects.media_progress(), data)
                return
            except Exception:  # noqa: BLE001 - progress is best effort; never fail a download over it
                log.debug("progress publish failed", exc_info=True)
        self.deliver(event)

    def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        """A queue of future events (None means: stream over)."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(_QUEUE_SIZE)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        """Stop delivering to a queue."""
        self._subscribers.discard(queue)

    async def close(self) -> None:
        """End every SSE stream and stop listening."""
        for queue in list(self._subscribers):
            _end(queue)
        self._subscribers.clear()
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()


def _end(queue: asyncio.Queue[dict[str, Any] | None]) -> None:
    """Tell a stream to close: drop what it has not read, so the end marker fits even in a full queue."""
    while not queue.empty():
        queue.get_nowait()
    queue.put_nowait(None)
