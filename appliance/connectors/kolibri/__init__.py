"""Kolibri (Learning Equality), 0.15 and later: the connector type's declaration."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from appliance.connectors.contract import Capability, ConnectorType, CredentialsInvalid

HEX = set("0123456789abcdef")


def check_credentials(value: Mapping[str, Any]) -> dict[str, str]:
    """A facility admin's username and password, and optionally Kolibri's id of the facility to sign in to."""
    if not set(value) <= {"username", "password", "facility"} or not {"username", "password"} <= set(value):
        raise CredentialsInvalid('Kolibri needs {"username": "...", "password": "..."} and optionally "facility"')
    out: dict[str, str] = {}
    for key in ("username", "password"):
        text = value[key]
        if not isinstance(text, str) or not text or len(text) > 256:
            raise CredentialsInvalid(f"Kolibri credentials: {key} must be 1-256 characters")
        out[key] = text
    facility = value.get("facility")
    if facility is not None and facility != "":
        if not isinstance(facility, str) or len(facility) != 32 or not set(facility) <= HEX:
            raise CredentialsInvalid("Kolibri credentials: facility must be Kolibri's 32-digit hex facility id")
        out["facility"] = facility
    return out


CONNECTOR = ConnectorType(
    name="kolibri",
    provider_types=("kolibri",),
    build="appliance.connectors.kolibri.connector:build",
    check_credentials=check_credentials,
    capabilities=frozenset({Capability.ACTIVITY, Capability.COURSE_RESOURCES}),
    description="Kolibri: facility users, classrooms and memberships over a signed-in session; progress"
    " through the summary-log CSV export, counted per classroom by the resources of its lessons",
)
