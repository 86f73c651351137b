"""Killing the embedded nats-server makes /readyz fail, then the supervisor restarts it and all recovers."""

from __future__ import annotations

import asyncio
import os
import signal

from aiohttp.test_utils import TestClient

from appliance.keys import BUS, NATS_SERVER


async def _poll_until(client: TestClient, status: int, timeout: float) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        resp = await client.get("/readyz")
        body = await resp.json()
        if resp.status == status:
            return body
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"/readyz stayed {resp.status}: {body}")
        await asyncio.sleep(0.02)


async def test_killed_nats_server_fails_readiness_then_recovers(client: TestClient) -> None:
    server = client.app[NATS_SERVER]
    assert server is not None
    old_pid = server.pid
    assert old_pid is not None
    await _poll_until(client, 200, 5)

    os.kill(old_pid, signal.SIGKILL)
    failed = await _poll_until(client, 503, 5)
    assert "nats" in failed["error"]["details"]["failing"]
    assert failed["error"]["details"]["checks"]["database"]["ok"] is True

    await _poll_until(client, 200, 20)
    assert server.pid not in (None, old_pid)
    assert server.restarts == 1
    # JetStream state survived on disk: the stream declared at start-up is still there.
    info = await client.app[BUS].js.stream_info("EVENTS")
    assert info.config.name == "EVENTS"
