"""Opens the connector of a provider through the connector registry (the sync feature names no connector)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from appliance.connectors.contract import Capability, Connector, ConnectorType, Upstream
from appliance.connectors.registry import build, connector_type
from appliance.db.database import Database
from appliance.sync import store
from appliance.sync.model import Provider
from appliance.sync.secrets import Vault
from appliance.sync.settings import SyncSettings


@dataclass(frozen=True)
class Opened:
    """A provider's connector and the declaration of its type (what it can do beyond the contract)."""

    kind: ConnectorType
    connector: Connector

    @property
    def capabilities(self) -> frozenset[Capability]:
        """Optional capabilities of this connector."""
        return self.kind.capabilities


Saver = Callable[[dict[str, str]], Awaitable[None]]


def upstream_of(
    provider: Provider, http: aiohttp.ClientSession, settings: SyncSettings, save: Saver | None = None
) -> Upstream:
    """The neutral description a connector is built from; `save` stores rotated credentials atomically."""
    return Upstream(
        provider_id=provider.id,
        provider_type=provider.type,
        base_url=provider.base_url,
        account_id=provider.account_id,
        credentials=dict(provider.credentials),
        http=http,
        request_timeout_s=settings.request_timeout_s,
        per_page=settings.per_page,
        save_credentials=save,
    )


def open_connector(
    provider: Provider, http: aiohttp.ClientSession, settings: SyncSettings, save: Saver | None = None
) -> Opened | None:
    """The connector of a provider, or None when no installed connector serves its type."""
    kind = connector_type(provider.type)
    if kind is None:
        return None
    return Opened(kind, build(kind, upstream_of(provider, http, settings, save)))


def credentials_saver(db: Database, vault: Vault, provider_id: int, loaded: str | None) -> Saver:
    """A `save_credentials` that seals and stores rotated credentials in one transaction, but only over the
    sealed credentials the connector was built from (`loaded`), so an admin's newer ones are never lost."""
    expected = [loaded]

    async def save(credentials: dict[str, str]) -> None:
        sealed = vault.seal(credentials)
        await store.save_sealed_credentials(db, provider_id, sealed, expected=expected[0])
        expected[0] = sealed

    return save
