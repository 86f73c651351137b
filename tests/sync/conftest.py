"""Fixtures of the sync tests: a running fake Canvas and a client session."""

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.fakes.canvas import FakeCanvas
from tests.sync.upstreams import UPSTREAMS, Upstream


@pytest.fixture
async def canvas() -> AsyncIterator[FakeCanvas]:
    """A fake Canvas listening on a free loopback port."""
    fake = await FakeCanvas().start()
    yield fake
    await fake.stop()


@pytest.fixture(params=sorted(UPSTREAMS))
async def upstream(request) -> AsyncIterator[tuple[Upstream, object]]:
    """(kind, started fake) for every upstream that has a fake: a test taking it runs once per connector."""
    kind = UPSTREAMS[request.param]
    fake = await kind.start()
    yield kind, fake
    await fake.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain client session."""
    async with aiohttp.ClientSession() as session:
        yield session


FAST_SYNC = {
    "relay_interval_s": 0.05,
    "scheduler_tick_s": 3600.0,
    "probe_interval_s": 1.0,
    "probe_timeout_s": 1.0,
    "backoff_initial_s": 0.05,
    "backoff_max_s": 0.4,
    "request_timeout_s": 5.0,
    "status_interval_s": 0.5,
}


@pytest.fixture
async def sync_client(app_client, config_factory):
    """The full app (primary) with fast sync timings and header authentication for tests."""
    from tests.sync.helpers import install_header_auth

    async def make(**sync):
        client = await app_client(config_factory(sync={**FAST_SYNC, **sync}))
        install_header_auth(client)
        return client

    return make


@pytest.fixture
async def admin(sync_client, make_user):
    """(client, system admin user) with default sync settings."""
    client = await sync_client()
    return client, await make_user(client, role="system_admin")
