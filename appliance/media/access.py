"""Who may see and play which video."""

from __future__ import annotations

import sqlite3

from aiohttp import web

from appliance.core.errors import not_found
from appliance.media.models import Availability
from appliance.media.repo import VideoRepo
from appliance.web.policy import ADMIN_ROLES, Principal, Role

_MAX_ID = 2**63 - 1


def video_id_of(request: web.Request) -> int:
    """The {id} of the route as an int (404 for ids SQLite cannot hold)."""
    raw = request.match_info["id"]
    value = int(raw) if raw.isdigit() and len(raw) < 20 else _MAX_ID + 1
    if value > _MAX_ID:
        raise not_found("no such video")
    return value


def is_admin(p: Principal) -> bool:
    """Facility, department or system admin."""
    return p.role in ADMIN_ROLES


async def playable(repo: VideoRepo, p: Principal, video_id: int) -> sqlite3.Row:
    """The video if this caller may play it now; 404 otherwise (hidden videos do not reveal themselves)."""
    row, visible_in = await repo.play_info(video_id)
    if row is None or row["availability"] != Availability.AVAILABLE.value or row["storage_key"] is None:
        raise not_found("no such video")
    if p.role is Role.SYSTEM_ADMIN:
        return row
    if visible_in.isdisjoint(p.facility_ids | {p.facility_id}):
        raise not_found("no such video")
    return row
