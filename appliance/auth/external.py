"""Identities asserted by a directory or an IdP: the profile they give and how groups map to roles."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

# Lowest to highest privilege; when several groups match, the highest wins.
ROLE_ORDER = ("learner", "facility_admin", "department_admin", "system_admin")


class ExternalSource(StrEnum):
    """Where an external identity came from (the users.auth_source value)."""

    LDAP = "ldap"
    SAML = "saml"


@dataclass(frozen=True)
class ExternalProfile:
    """A person as a directory or IdP describes them, already mapped to local fields."""

    source: ExternalSource
    username: str
    first_name: str
    last_name: str
    email: str | None
    doc_id: str | None
    role: str
    facility_ids: tuple[int, ...]

    @property
    def facility_id(self) -> int:
        """The home facility (first mapped one)."""
        return self.facility_ids[0]


def _norm_key(value: str) -> str:
    # DNs and attribute values compare case-insensitively and without spaces around separators.
    return ",".join(part.strip() for part in value.split(",")).casefold()


def map_role(values: Iterable[str], role_map: Mapping[str, str], default_role: str) -> str | None:
    """Return the highest role mapped from values (group DNs or attribute values), else the default."""
    table = {_norm_key(k): v for k, v in role_map.items()}
    found = [table[_norm_key(v)] for v in values if _norm_key(v) in table]
    found = [r for r in found if r in ROLE_ORDER]
    if found:
        return max(found, key=ROLE_ORDER.index)
    return default_role or None


def map_facilities(values: Iterable[str], facility_map: Mapping[str, str], default_facility_id: int) -> tuple[int, ...]:
    """Return the facility ids mapped from values in map order of appearance, else the default alone."""
    table = {_norm_key(k): v for k, v in facility_map.items()}
    ids: list[int] = []
    for v in values:
        raw = table.get(_norm_key(v))
        if raw is not None and raw.strip().isdigit() and int(raw) not in ids:
            ids.append(int(raw))
    return tuple(ids) or (default_facility_id,)
