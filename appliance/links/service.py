"""Helpful links: validation, visibility per facility, and whether a link leaves the local network."""

from __future__ import annotations

import ipaddress
import json
from typing import Any
from urllib.parse import urlsplit

from appliance.core.errors import bad_request, not_found
from appliance.db.database import Database
from appliance.web.policy import ADMIN_ROLES, Principal, Role, can_access_facility, require_facility

COLUMNS = "id, title, description, url, icon_type IS NOT NULL AS has_icon, position, created_at, updated_at"
LOCAL_SUFFIXES = (".lan", ".local", ".internal", ".home.arpa", ".localhost")
ICON_TYPES = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF87a": "image/gif",
              b"GIF89a": "image/gif"}
MAX_ICON_BYTES = 65536


def leaves_lan(url: str) -> bool:
    """True unless the link's host is a private, loopback or link-local address or a local-only name."""
    host = (urlsplit(url).hostname or "").lower()
    if not host:
        return False  # a path on this appliance
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return not (host == "localhost" or "." not in host or host.endswith(LOCAL_SUFFIXES))
    return not (address.is_private or address.is_loopback or address.is_link_local)


def check_fields(data: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """Title, description and URL (http, https or a local path) from a request body; a 400 names the field."""
    out: dict[str, Any] = {}
    for name, limit, required in (("title", 200, True), ("description", 1000, False), ("url", 2000, True)):
        if name not in data:
            if creating and required:
                raise bad_request("invalid_field", f"{name} is required", {"field": name})
            continue
        value = data[name]
        if not isinstance(value, str) or len(value.strip()) > limit or (required and not value.strip()):
            raise bad_request("invalid_field", f"{name} must be text of at most {limit} characters", {"field": name})
        out[name] = value.strip()
    if "url" in out:
        parts = urlsplit(out["url"])
        local_path = out["url"].startswith("/") and not out["url"].startswith("//")
        if not local_path and (parts.scheme not in ("http", "https") or not parts.hostname):
            raise bad_request("invalid_field", "url must start with http://, https:// or /", {"field": "url"})
    if "position" in data:
        if not isinstance(data["position"], int) or isinstance(data["position"], bool):
            raise bad_request("invalid_field", "position must be an integer", {"field": "position"})
        out["position"] = data["position"]
    return out


def icon_type(data: bytes) -> str:
    """The image type of an uploaded icon by its first bytes (PNG, JPEG, GIF only: no SVG, it could hold script)."""
    if len(data) > MAX_ICON_BYTES:
        raise bad_request("icon_too_large", f"an icon may hold at most {MAX_ICON_BYTES} bytes", {"field": "icon"})
    for magic, kind in ICON_TYPES.items():
        if data.startswith(magic):
            return kind
    raise bad_request("invalid_icon", "an icon must be a PNG, JPEG or GIF image", {"field": "icon"})


async def facilities_of(db: Database, link_id: int) -> list[int]:
    """Facilities that see a link."""
    rows = await db.fetchall("SELECT facility_id FROM helpful_link_facilities WHERE link_id = ? ORDER BY 1",
                             (link_id,))
    return [r["facility_id"] for r in rows]


async def visible_links(db: Database, p: Principal) -> list[Any]:
    """Links the caller may see: staff see all, learners those visible in one of their facilities."""
    if p.role in ADMIN_ROLES:
        return await db.fetchall(f"SELECT {COLUMNS} FROM helpful_links ORDER BY position, title")  # noqa: S608
    return await db.fetchall(
        f"SELECT {COLUMNS} FROM helpful_links WHERE id IN (SELECT link_id FROM helpful_link_facilities "  # noqa: S608
        "WHERE facility_id IN (SELECT value FROM json_each(?))) ORDER BY position, title",
        (json.dumps(sorted(p.facility_ids | {p.facility_id})),))


async def load(db: Database, p: Principal, link_id: int) -> Any:
    """One link the caller may see (404 otherwise)."""
    row = await db.fetchone(f"SELECT {COLUMNS} FROM helpful_links WHERE id = ?", (link_id,))  # noqa: S608
    if row is None:
        raise not_found("no such link")
    if p.role not in ADMIN_ROLES and not set(await facilities_of(db, link_id)) & (p.facility_ids | {p.facility_id}):
        raise not_found("no such link")
    return row


async def create(db: Database, p: Principal, fields: dict[str, Any]) -> int:
    """Insert a link (hidden until made visible)."""
    result = await db.execute(
        "INSERT INTO helpful_links (title, description, url, position, created_by) VALUES (?, ?, ?, ?, ?)",
        (fields["title"], fields.get("description", ""), fields["url"], fields.get("position", 0), p.user_id))
    return int(result.lastrowid or 0)


async def update(db: Database, link_id: int, fields: dict[str, Any]) -> None:
    """Change title, description, URL or position."""
    if fields:
        sets = ", ".join(f"{k} = ?" for k in fields)
        await db.execute(
            f"UPDATE helpful_links SET {sets}, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?",  # noqa: S608
            (*fields.values(), link_id))


async def set_icon(db: Database, link_id: int, data: bytes | None) -> None:
    """Store (or with None remove) the link's icon."""
    kind = icon_type(data) if data else None
    await db.execute("UPDATE helpful_links SET icon = ?, icon_type = ? WHERE id = ?", (data or None, kind, link_id))


async def set_visibility(db: Database, p: Principal, link_id: int, wanted: list[int]) -> None:
    """Make a link visible to exactly these of the facilities the caller manages (others are kept)."""
    for fac in wanted:
        require_facility(p, fac)
    known = {r["id"] for r in await db.fetchall("SELECT id FROM facilities")}
    if unknown := [f for f in wanted if f not in known]:
        raise bad_request("unknown_facilities", "some facilities do not exist", {"facility_ids": unknown})
    async with db.transaction() as tx:
        cur = await tx.execute("SELECT facility_id FROM helpful_link_facilities WHERE link_id = ?", (link_id,))
        before = {r[0] for r in await cur.fetchall()}
        managed = {f for f in before if can_access_facility(p, f)}
        for fac in managed - set(wanted):
            await tx.execute("DELETE FROM helpful_link_facilities WHERE link_id = ? AND facility_id = ?",
                             (link_id, fac))
        for fac in set(wanted) - before:
            await tx.execute("INSERT INTO helpful_link_facilities (link_id, facility_id) VALUES (?, ?)",
                             (link_id, fac))


async def delete(db: Database, p: Principal, link_id: int) -> None:
    """Delete a link; a facility or department admin only one seen nowhere outside their facilities."""
    outside = [f for f in await facilities_of(db, link_id) if not can_access_facility(p, f)]
    if outside and p.role is not Role.SYSTEM_ADMIN:
        raise bad_request("shared_link", "this link is also shown in facilities you do not manage")
    await db.execute("DELETE FROM helpful_links WHERE id = ?", (link_id,))


def link_json(row: Any, facility_ids: list[int] | None = None) -> dict[str, Any]:
    """A link as the API shows it."""
    out = {k: row[k] for k in ("id", "title", "description", "url", "position", "created_at", "updated_at")}
    out["has_icon"] = bool(row["has_icon"])
    out["icon_url"] = f"/links/{row['id']}/icon" if row["has_icon"] else None
    out["leaves_lan"] = leaves_lan(row["url"])
    if facility_ids is not None:
        out["facility_ids"] = facility_ids
    return out
