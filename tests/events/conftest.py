"""Fixtures of the events tests: the full app with fast retry timings, a system admin, a real receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from appliance.config import sections
from tests.events.receiver import Receiver
from tests.sync.helpers import as_user, install_header_auth

FAST = {
    "events": {"relay_interval_s": 0.05},
    "webhooks": {"retry_initial_s": 0.2, "retry_max_interval_s": 1.0, "request_timeout_s": 5.0},
}


def loopback_allowed() -> dict[str, Any]:
    """The receivers listen on 127.0.0.1: allow loopback when the egress policy exists in this tree."""
    return {"egress": {"allowed_networks": ["127.0.0.0/8"]}} if "egress" in sections() else {}


def fast_sections(**overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """FAST merged with per-test section overrides, plus the loopback egress allowance."""
    out: dict[str, dict[str, Any]] = {k: dict(v) for k, v in FAST.items()}
    for name, values in {**loopback_allowed(), **overrides}.items():
        out.setdefault(name, {}).update(values)
    return out


@pytest.fixture
async def events_app(app_client, config_factory, make_user):
    """A factory of (client, system admin headers) for the full app with fast webhook timings."""

    async def make(**overrides: dict[str, Any]) -> tuple[Any, dict[str, str]]:
        client = await app_client(config_factory(**fast_sections(**overrides)))
        install_header_auth(client)
        admin = await make_user(client, role="system_admin")
        return client, as_user(admin)

    return make


@pytest.fixture
async def canvas() -> AsyncIterator[Any]:
    """The sync tests' fake Canvas on a free loopback port."""
    from tests.fakes.canvas import FakeCanvas

    fake = await FakeCanvas().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A running receiver (stopped after the test)."""
    rx = Receiver()
    await rx.start()
    yield rx
    await rx.stop()


async def create_webhook(client: Any, headers: dict[str, str], rx: Receiver, **fields: Any) -> dict[str, Any]:
    """POST a webhook to the receiver and teach the receiver its secret."""
    resp = await client.post("/api/v1/webhooks", json={"url": rx.url, **fields}, headers=headers)
    assert resp.status == 201, await resp.text()
    data = (await resp.json())["data"]
    rx.secrets.append(data["secret"])
    return data
