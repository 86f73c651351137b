"""Canvas LMS (open source and cloud): the connector type's declaration."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from appliance.connectors.contract import Capability, ConnectorType, CredentialsInvalid


def check_credentials(value: Mapping[str, Any]) -> dict[str, str]:
    """Canvas takes exactly one API access token."""
    token = value.get("access_token", "")
    if not isinstance(token, str) or not token.strip() or len(token) > 4096 or set(value) != {"access_token"}:
        raise CredentialsInvalid('Canvas needs exactly {"access_token": "..."}')
    return {"access_token": token}


CONNECTOR = ConnectorType(
    name="canvas",
    provider_types=("canvas_oss", "canvas_cloud"),
    build="appliance.connectors.canvas.connector:build",
    check_credentials=check_credentials,
    capabilities=frozenset({Capability.BATCH_USER_IMPORT, Capability.BATCH_ENROLLMENT_IMPORT, Capability.MILESTONES,
                            Capability.ANALYTICS}),
    description="Canvas LMS: REST API with a bearer token; SIS imports for large rosters",
)
