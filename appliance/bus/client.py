"""The NATS client of one process: reconnects forever and reports its state."""

from __future__ import annotations

import asyncio
import logging
from enum import Enum

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import PubAck

from appliance.bus.credentials import NatsCredentials
from appliance.observability.metrics import NATS_CONNECTED

log = logging.getLogger(__name__)


class BusState(Enum):
    """Connection state, as seen by this process."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    CLOSED = "closed"


class Bus:
    """A nats-py client plus its JetStream context."""

    def __init__(self, url: str, creds: NatsCredentials | None, *, name: str = "appliance") -> None:
        self.url = url
        self._creds = creds
        self._name = name
        self.state = BusState.CONNECTING
        self.nc: Client = Client()
        self.js: JetStreamContext

    @property
    def connected(self) -> bool:
        """True while the client holds a live connection."""
        return self.state is BusState.CONNECTED and self.nc.is_connected

    async def connect(self, timeout: float = 10.0) -> None:
        """Connect, retrying until timeout; afterwards reconnect forever in the background."""
        kwargs = {}
        if self._creds:
            kwargs = {"user": self._creds.user, "password": self._creds.password}
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                self.nc = await self._connect_once(kwargs)
                break
            except Exception:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.25)
        self.js = self.nc.jetstream(timeout=5)
        self.state = BusState.CONNECTED
        NATS_CONNECTED.set(1)

    async def _connect_once(self, kwargs: dict[str, str]) -> Client:
        return await nats.connect(
            self.url,
            name=self._name,
            connect_timeout=2,
            reconnect_time_wait=0.5,
            max_reconnect_attempts=-1,
            allow_reconnect=True,
            ping_interval=5,
            max_outstanding_pings=2,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
            closed_cb=self._on_closed,
            error_cb=self._on_error,
            **kwargs,
        )

    async def _on_disconnected(self) -> None:
        if self.state is BusState.CLOSED:
            return
        if self.state is BusState.CONNECTED:
            log.warning("NATS connection lost; reconnecting")
        self.state = BusState.DISCONNECTED
        NATS_CONNECTED.set(0)

    async def _on_reconnected(self) -> None:
        log.info("NATS connection recovered")
        self.state = BusState.CONNECTED
        NATS_CONNECTED.set(1)

    async def _on_closed(self) -> None:
        self.state = BusState.CLOSED
        NATS_CONNECTED.set(0)

    async def _on_error(self, exc: Exception) -> None:
        # Connection errors repeat on every reconnect attempt; log them at debug to keep the log readable.
        log.debug("NATS error: %s", exc)

    async def publish(self, subject: str, data: bytes, *, msg_id: str | None = None, timeout: float = 5.0) -> PubAck:
        """JetStream publish; msg_id becomes Nats-Msg-Id so a re-publish inside the window is a no-op."""
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        return await self.js.publish(subject, data, timeout=timeout, headers=headers)

    async def ping(self, timeout: float = 1.0) -> bool:
        """True when a round trip to the server succeeds now."""
        if not self.nc.is_connected:
            return False
        try:
            await asyncio.wait_for(self.nc.flush(), timeout)
            return True
        except Exception:
            return False

    async def close(self, timeout: float = 5.0) -> None:
        """Drain subscriptions and pending publishes, then close."""
        if self.nc.is_closed:
            return
        self.state = BusState.CLOSED
        try:
            await asyncio.wait_for(self.nc.drain(), timeout)
        except Exception:
            await self.nc.close()
        self.state = BusState.CLOSED
        NATS_CONNECTED.set(0)
