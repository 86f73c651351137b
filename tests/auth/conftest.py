"""Fixtures of the identity tests: a real slapd with a small tree, test PKI."""

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from tests.auth.helpers import Browser
from tests.auth.pki import LocalPki
from tests.auth.saml_idp import LocalIdp
from tests.auth.slapd import Slapd, free_port


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> LocalPki:
    """A CA and a 127.0.0.1 server certificate made for this test run."""
    return LocalPki.create(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory, pki: LocalPki) -> Iterator[Slapd]:
    """A real OpenLDAP slapd on free loopback ports (ldap:// with StartTLS, and ldaps://)."""
    server = Slapd(Path(tmp_path_factory.mktemp("slapd")), free_port(), free_port(), pki)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
async def saml_idp(tmp_path: Path) -> AsyncIterator[LocalIdp]:
    """A running pysaml2 IdP on a free port (configure it with the SP metadata before use)."""
    idp = LocalIdp(tmp_path)
    await idp.start()
    try:
        yield idp
    finally:
        await idp.stop()


@pytest.fixture
async def browsers() -> AsyncIterator[Callable[..., Browser]]:
    """Make independent browsers (own cookie jars); all are closed at the end."""
    made: list[Browser] = []

    def make(client: TestClient, *, secure_origin: bool = False) -> Browser:
        browser = Browser(client, secure_origin=secure_origin)
        made.append(browser)
        return browser

    yield make
    for browser in made:
        await browser.close()
