"""Finds connector types through the `appliance.connectors` entry-point group and builds connectors."""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any, cast

from appliance.connectors.contract import Connector, ConnectorType, Upstream
from appliance.core.feature import resolve

CONNECTORS_GROUP = "appliance.connectors"


class RegistryError(Exception):
    """A connector declaration that cannot be used."""


@cache
def connector_types() -> dict[str, ConnectorType]:
    """Every registered connector type, keyed by each provider type it serves."""
    by_provider: dict[str, ConnectorType] = {}
    names: set[str] = set()
    for ep in entry_points(group=CONNECTORS_GROUP):
        declared: Any = ep.load()
        if not isinstance(declared, ConnectorType):
            raise RegistryError(f"entry point {ep.name} = {ep.value} is not a ConnectorType")
        if declared.name != ep.name or declared.name in names:
            raise RegistryError(f"connector entry point {ep.name} declares {declared.name!r} (duplicate or mismatch)")
        names.add(declared.name)
        for provider_type in declared.provider_types:
            if provider_type in by_provider:
                raise RegistryError(
                    f"provider type {provider_type} is served by both {by_provider[provider_type].name} and {ep.name}"
                )
            by_provider[provider_type] = declared
    return by_provider


def connector_type(provider_type: str) -> ConnectorType | None:
    """The connector type serving a provider type, or None when none is installed."""
    return connector_types().get(provider_type)


def build(kind: ConnectorType, upstream: Upstream) -> Connector:
    """A connector for one provider."""
    factory = resolve(kind.build)
    return cast(Connector, factory(upstream))
