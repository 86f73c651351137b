"""Fixtures of the connector tests: a fake Brightspace, one real Kolibri per test session, a client session."""

from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from tests.fakes.brightspace import FakeBrightspace
from tests.realkolibri import RealKolibri, start_kolibri


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


@pytest.fixture(scope="session")
def real_kolibri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealKolibri]:
    """A provisioned, running Kolibri (installed into its cached venv on first use), stopped at the end."""
    server = start_kolibri(tmp_path_factory.mktemp("kolibri-home"))
    try:
        yield server
    finally:
        server.stop()


from tests.sync.conftest import admin, sync_client  # noqa: E402, F401  (the full app with fast sync timings)
