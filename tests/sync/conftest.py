"""Fixtures of the sync tests: a running fake Canvas and a client session."""

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.fakes.canvas import FakeCanvas


@pytest.fixture
async def canvas() -> AsyncIterator[FakeCanvas]:
    """A fake Canvas listening on a free loopback port."""
    fake = await FakeCanvas().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain client session."""
    async with aiohttp.ClientSession() as session:
        yield session
