"""Helpful links API (JSON envelope) and the icon route."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from appliance.core.errors import bad_request, too_large
from appliance.keys import DB
from appliance.links import service
from appliance.web.openapi import BOOL, INT, STR, TIME, arr, nullable, obj, spec, text
from appliance.web.openapi import ID as ROW_ID
from appliance.web.policy import ADMIN_ROLES, Role, principal, roles, signed_in
from appliance.web.responses import ok, read_json

ADMINS = (Role.FACILITY_ADMIN, Role.DEPARTMENT_ADMIN)
ID = r"{id:\d{1,12}}"
routes = web.RouteTableDef()
LINK_SCHEMA = obj("id", "title", "url", "has_icon", "icon_url", "leaves_lan", id=ROW_ID, title=STR,
                  description=nullable(STR), url=STR, position=INT, created_at=TIME, updated_at=nullable(TIME),
                  has_icon=BOOL, icon_url=nullable(STR), leaves_lan=BOOL, facility_ids=arr(ROW_ID))
"""A helpful link as the API shows it (facility_ids for staff)."""
FACILITY_IDS = {**arr(ROW_ID), "maxItems": 50}
LINK_FIELDS = {"title": text(200, 1), "description": text(1000), "url": {"type": "string", "maxLength": 2000,
                                                                        "pattern": "^(https?://[a-z0-9.-]+|/[^/])"},
               "position": {"type": "integer", "minimum": -1000, "maximum": 1000}}


def _id(request: web.Request) -> int:
    return int(request.match_info["id"])


def _facility_ids(body: dict[str, Any]) -> list[int] | None:
    ids = body.get("facility_ids")
    if ids is None:
        return None
    if not isinstance(ids, list) or len(ids) > 10000 or not all(
            isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids):
        raise bad_request("invalid_body", "facility_ids must be a list of facility ids", {"field": "facility_ids"})
    return sorted(set(ids))


@routes.get("/api/v1/links")
@signed_in
@spec(response=arr(LINK_SCHEMA))
async def list_links(request: web.Request) -> web.Response:
    """Links the caller may see (staff: all, with the facilities that see each)."""
    p = principal(request)
    db = request.app[DB]
    rows = await service.visible_links(db, p)
    staff = p.role in ADMIN_ROLES
    return ok([service.link_json(r, await service.facilities_of(db, r["id"]) if staff else None) for r in rows])


@routes.post("/api/v1/links")
@roles(*ADMINS, facility_scoped=True)
@spec(status=201, body=obj("title", "url", **LINK_FIELDS, facility_ids=FACILITY_IDS), response=LINK_SCHEMA,
      links={"ChangeLink": ("patch", "/api/v1/links/{id}", "/data/id"),
             "LinkVisibility": ("put", "/api/v1/links/{id}/visibility", "/data/id"),
             "DeleteLink": ("delete", "/api/v1/links/{id}", "/data/id")})
async def create_link(request: web.Request) -> web.Response:
    """Add a link {title, description?, url, position?, facility_ids?} (hidden until given facilities)."""
    p = principal(request)
    body = await read_json(request)
    fields = service.check_fields(body, creating=True)
    wanted = _facility_ids(body)
    db = request.app[DB]
    link_id = await service.create(db, p, fields)
    if wanted:
        await service.set_visibility(db, p, link_id, wanted)
    row = await service.load(db, p, link_id)
    return ok(service.link_json(row, await service.facilities_of(db, link_id)), status=201)


@routes.patch(f"/api/v1/links/{ID}")
@roles(*ADMINS, facility_scoped=True)
@spec(body=obj(**LINK_FIELDS), response=LINK_SCHEMA)
async def update_link(request: web.Request) -> web.Response:
    """Change title, description, URL or position."""
    p = principal(request)
    db = request.app[DB]
    await service.load(db, p, _id(request))
    await service.update(db, _id(request), service.check_fields(await read_json(request), creating=False))
    return ok(service.link_json(await service.load(db, p, _id(request)), await service.facilities_of(db, _id(request))))


@routes.put(f"/api/v1/links/{ID}/visibility")
@roles(*ADMINS, facility_scoped=True)
@spec(body=obj("facility_ids", facility_ids=FACILITY_IDS), response=LINK_SCHEMA)
async def put_visibility(request: web.Request) -> web.Response:
    """Set the facilities (of those the caller manages) that see the link."""
    p = principal(request)
    db = request.app[DB]
    await service.load(db, p, _id(request))
    wanted = _facility_ids(await read_json(request))
    await service.set_visibility(db, p, _id(request), wanted or [])
    return ok(service.link_json(await service.load(db, p, _id(request)), await service.facilities_of(db, _id(request))))


@routes.delete(f"/api/v1/links/{ID}")
@roles(*ADMINS, facility_scoped=True)
@spec(response=obj("id", "deleted", id=ROW_ID, deleted={"const": True}))
async def delete_link(request: web.Request) -> web.Response:
    """Delete a link."""
    p = principal(request)
    db = request.app[DB]
    await service.load(db, p, _id(request))
    await service.delete(db, p, _id(request))
    return ok({"id": _id(request), "deleted": True})


@routes.put(f"/api/v1/links/{ID}/icon")
@roles(*ADMINS, facility_scoped=True)
@spec(body_type="application/octet-stream", body={"type": "string", "format": "binary", "maxLength": 65536},
      response=LINK_SCHEMA)
async def put_icon(request: web.Request) -> web.Response:
    """Store the link's icon: the raw bytes of a PNG, JPEG or GIF of at most 64 KB."""
    p = principal(request)
    db = request.app[DB]
    await service.load(db, p, _id(request))
    data = await request.content.read(service.MAX_ICON_BYTES + 1)
    if len(data) > service.MAX_ICON_BYTES:
        raise too_large(service.MAX_ICON_BYTES)
    await service.set_icon(db, _id(request), data)
    return ok(service.link_json(await service.load(db, p, _id(request))))


@routes.delete(f"/api/v1/links/{ID}/icon")
@roles(*ADMINS, facility_scoped=True)
@spec(response=LINK_SCHEMA)
async def delete_icon(request: web.Request) -> web.Response:
    """Remove the link's icon."""
    p = principal(request)
    db = request.app[DB]
    await service.load(db, p, _id(request))
    await service.set_icon(db, _id(request), None)
    return ok(service.link_json(await service.load(db, p, _id(request))))


@routes.get(f"/links/{ID}/icon")
@signed_in
async def icon(request: web.Request) -> web.Response:
    """The icon image of a link the caller may see (served from the database, never from the link's site)."""
    p = principal(request)
    db = request.app[DB]
    await service.load(db, p, _id(request))
    row = await db.fetchone("SELECT icon, icon_type FROM helpful_links WHERE id = ?", (_id(request),))
    if row is None or row["icon"] is None:
        raise web.HTTPNotFound()
    return web.Response(body=row["icon"], content_type=row["icon_type"], headers={
        "Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox"})
