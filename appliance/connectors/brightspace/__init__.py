"""D2L Brightspace (Valence REST API): the connector type's declaration and its credentials check."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from appliance.connectors.contract import Capability, ConnectorType, CredentialsInvalid

ID_KEY = frozenset({"app_id", "app_key", "user_id", "user_key"})
OAUTH = frozenset({"client_id", "client_secret", "refresh_token"})
OPTIONAL = frozenset({"org_unit_id", "token_url"})
STORED = frozenset({"access_token", "access_expires_at"})  # written by token rotation, never by an admin
SHAPES = ('ID-key {"app_id", "app_key", "user_id", "user_key"} or OAuth 2.0 '
          '{"client_id", "client_secret", "refresh_token"}, plus optional "org_unit_id" (and "token_url")')


def check_credentials(value: Mapping[str, Any]) -> dict[str, str]:
    """Exactly one of the two credential kinds, every value a non-empty string."""
    keys = set(value)
    kind = ID_KEY if keys >= ID_KEY else OAUTH if keys >= OAUTH else None
    if kind is None or keys - kind - OPTIONAL or (kind is ID_KEY and keys & OAUTH):
        raise CredentialsInvalid(f"Brightspace needs {SHAPES}")
    for key in keys:
        v = value[key]
        if not isinstance(v, str) or not v.strip() or len(v) > 4096:
            raise CredentialsInvalid(f"Brightspace credentials: {key} must be a non-empty string")
    org_unit = value.get("org_unit_id")
    if org_unit is not None and not org_unit.strip().isdigit():
        raise CredentialsInvalid("Brightspace credentials: org_unit_id must be the number of an org unit")
    token_url = value.get("token_url")
    if token_url is not None and not token_url.startswith(("https://", "http://")):
        raise CredentialsInvalid("Brightspace credentials: token_url must be an http(s) URL")
    return {k: value[k].strip() for k in keys}


CONNECTOR = ConnectorType(
    name="brightspace",
    provider_types=("brightspace",),
    build="appliance.connectors.brightspace.connector:build",
    check_credentials=check_credentials,
    capabilities=frozenset({Capability.MILESTONES}),
    description="D2L Brightspace: Valence REST API with ID-key signatures or OAuth 2.0 (rotating refresh tokens)",
)
