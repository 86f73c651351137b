"""Validation of provider bodies: clear 400s naming the field, nothing half-applied."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from appliance.connectors.contract import CredentialsInvalid
from appliance.connectors.registry import connector_type, connector_types
from appliance.core.errors import bad_request
from appliance.sync.model import ProviderState, ProviderType

FIELDS = {"type", "name", "base_url", "account_id", "credentials", "state", "push_roster", "facility_id"}


def _invalid(field: str, message: str) -> Exception:
    return bad_request("invalid_field", f"{field}: {message}", {"field": field})


def provider_fields(body: dict[str, Any], *, partial: bool, current_type: str | None = None) -> dict[str, Any]:
    """The validated subset of a POST (all required) or PATCH (any) body."""
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise bad_request("unknown_field", f"unknown field {unknown[0]}", {"field": unknown[0]})
    required = {"type", "name", "base_url", "credentials"}
    missing = sorted(required - set(body)) if not partial else []
    if missing:
        raise _invalid(missing[0], "is required")
    out: dict[str, Any] = {}
    if "type" in body:
        if partial:
            raise _invalid("type", "cannot be changed; create a new provider")
        values = known_types()
        if body["type"] not in values:
            raise _invalid("type", f"must be one of {', '.join(values)}")
        out["type"] = body["type"]
    if "name" in body:
        name = body["name"]
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            raise _invalid("name", "must be 1-100 characters")
        out["name"] = name.strip()
    if "base_url" in body:
        url = body["base_url"]
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or len(url) > 500:
            raise _invalid("base_url", "must be an http(s) URL")
        out["base_url"] = url.rstrip("/")
    if "account_id" in body:
        account = body["account_id"]
        if isinstance(account, bool) or not isinstance(account, str | int) or len(str(account)) > 100:
            raise _invalid("account_id", "must be a string or an integer")
        out["account_id"] = str(account)
    if "state" in body:
        states = [s.value for s in ProviderState]
        if body["state"] not in states:
            raise _invalid("state", f"must be one of {', '.join(states)}")
        out["state"] = body["state"]
    if "push_roster" in body:
        if not isinstance(body["push_roster"], bool):
            raise _invalid("push_roster", "must be true or false")
        out["push_roster"] = int(body["push_roster"])
    if "facility_id" in body:
        fid = body["facility_id"]
        if fid is not None and (isinstance(fid, bool) or not isinstance(fid, int)):
            raise _invalid("facility_id", "must be an integer or null")
        out["facility_id"] = fid
    if "credentials" in body:
        out["credentials"] = credentials(body["credentials"], out.get("type") or current_type or "")
    return out


def known_types() -> list[str]:
    """The appliance's own provider types plus every type an installed connector serves (plugins included)."""
    return sorted({t.value for t in ProviderType} | set(connector_types()))


def credentials(value: Any, type_: str) -> dict[str, str]:
    """An object whose keys depend on the provider type; its connector type checks them."""
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _invalid("credentials", "must be an object of strings")
    kind = connector_type(type_) if type_ else None
    if kind is not None:
        try:
            return kind.check_credentials(value)
        except CredentialsInvalid as exc:
            raise _invalid("credentials", str(exc)) from None
    return {k: v for k, v in value.items()}
