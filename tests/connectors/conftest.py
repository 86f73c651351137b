"""Fixtures of the connector tests: a running fake Brightspace and a client session."""

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.fakes.brightspace import FakeBrightspace


@pytest.fixture
async def brightspace() -> AsyncIterator[FakeBrightspace]:
    """A fake Brightspace listening on a free loopback port (its clock 15 minutes ahead)."""
    fake = await FakeBrightspace().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain client session."""
    async with aiohttp.ClientSession() as session:
        yield session


from tests.sync.conftest import admin, sync_client  # noqa: E402, F401  (the full app with fast sync timings)
