"""Moodle (web services REST): the connector type's declaration, packaged the way a third-party plugin is.

Nothing in the appliance imports this package: the sync engine finds it only through its
`appliance.connectors` entry point (`moodle = "appliance.connectors.moodle:CONNECTOR"`), and would find a
connector shipped in another distribution the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from appliance.connectors.contract import Capability, ConnectorType, CredentialsInvalid


def check_credentials(value: Mapping[str, Any]) -> dict[str, str]:
    """Moodle takes exactly one web service token (Site administration → Server → Web services → Tokens)."""
    token = value.get("token", "")
    if (
        set(value) != {"token"}
        or not isinstance(token, str)
        or not token.strip()
        or len(token) > 256
        or not token.isascii()
        or not token.isalnum()
    ):
        raise CredentialsInvalid('Moodle needs exactly {"token": "..."} (a web service token: letters and digits)')
    return {"token": token}


CONNECTOR = ConnectorType(
    name="moodle",
    provider_types=("moodle",),
    build="appliance.connectors.moodle.connector:build",
    check_credentials=check_credentials,
    capabilities=frozenset({Capability.MILESTONES}),
    description="Moodle: web services REST with a token; completions and grades become milestones",
)
