"""JSON API of the video cache: add, list, show, delete, visibility, retry, positions, SSE progress."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from typing import TYPE_CHECKING, Any

from aiohttp import web

from appliance.core.errors import ApiError, bad_request, conflict, not_found
from appliance.media.access import is_admin, playable, video_id_of
from appliance.media.keys import MEDIA
from appliance.media.models import VIDEO_SCHEMA, Availability, video_json
from appliance.media.space import NoSpace
from appliance.media.ssrf import UnresolvableHost, UrlRefused, check_url
from appliance.web.openapi import BOOL, ID, NUM, PAGE_QUERY, arr, obj, spec
from appliance.web.policy import ADMIN_ROLES, Principal, Role, principal, require_facility, roles, signed_in
from appliance.web.responses import ok, page_params, paginated, read_json

if TYPE_CHECKING:
    from appliance.db.database import Database
    from appliance.media.service import MediaService

routes = web.RouteTableDef()
ADMINS = (Role.FACILITY_ADMIN, Role.DEPARTMENT_ADMIN)
MAX_URLS = 50
_SSE_KEEPALIVE_S = 15.0
_SSE_RECHECK_S = 1.0  # an idle feed re-checks its subscriber this often
# how soon a browser's EventSource reconnects after the stream ends (restart, a dropped slow reader)
_SSE_RETRY = b"retry: 2000\n\n"


def insufficient_storage(message: str) -> ApiError:
    """507: the cache is full or the disk is low."""
    return ApiError(507, "insufficient_storage", message)


@routes.post("/api/v1/videos")
@roles(*ADMINS)
@spec(status=202, body={"type": "object", "required": ["urls"], "properties": {
    "urls": {"type": "array", "items": {"type": "string"}, "maxItems": 50}}},
      response=arr(obj("id", "url", "created", id=ID, url={"type": "string"}, created=BOOL)))
async def add_videos(request: web.Request) -> web.Response:
    """Queue downloads for URLs; all are checked first and nothing is added if one is refused."""
    svc = request.app[MEDIA]
    body = await read_json(request)
    urls = body.get("urls")
    if not isinstance(urls, list) or not urls or len(urls) > MAX_URLS or not all(isinstance(u, str) for u in urls):
        raise bad_request("invalid_urls", f"urls must be a list of 1 to {MAX_URLS} strings")
    problems = []
    for index, url in enumerate(urls):
        try:
            await check_url(url.strip(), svc.allowed_networks)
        except UnresolvableHost:
            continue  # offline now: accepted, and checked again by the download job before any request
        except UrlRefused as exc:
            problems.append({"index": index, "url": url[:200], "reason": str(exc)})
    if problems:
        raise bad_request("url_refused", "some URLs cannot be cached; nothing was added", {"urls": problems})
    try:
        svc.space.check(await svc.repo.used_bytes())
    except NoSpace as exc:
        raise insufficient_storage(str(exc)) from None
    p = principal(request)
    added = []
    for url in dict.fromkeys(u.strip() for u in urls):
        video_id, created = await svc.add_url(url, p.user_id)
        added.append({"id": video_id, "url": url, "created": created})
    return ok(added, status=202)


def _availability(request: web.Request) -> Availability | None:
    raw = request.query.get("availability")
    if not raw:
        return None
    try:
        return Availability(raw)
    except ValueError:
        raise bad_request("invalid_parameter", "availability must be one of "
                          + ", ".join(a.value for a in Availability), {"parameter": "availability"}) from None


def _facility_param(request: web.Request) -> int | None:
    raw = request.query.get("facility_id")
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 12:
        raise bad_request("invalid_parameter", "facility_id must be an integer", {"parameter": "facility_id"})
    return int(raw)


@routes.get("/api/v1/videos")
@signed_in
@spec(query={**PAGE_QUERY, "availability": {"enum": ["pending", "processing", "available", "error"]},
             "facility_id": {"type": "string", "pattern": "^[0-9]{1,12}$"}}, response=arr(VIDEO_SCHEMA))
async def list_videos(request: web.Request) -> web.Response:
    """A page of videos; learners see only what is available in their facilities."""
    svc = request.app[MEDIA]
    p = principal(request)
    page = page_params(request)
    availability = _availability(request)
    facility_id = _facility_param(request)
    visible_to = None
    if not is_admin(p):
        availability = Availability.AVAILABLE if availability in (None, Availability.AVAILABLE) else availability
        if availability is not Availability.AVAILABLE:
            return paginated([], page, 0)
        visible_to = sorted(p.facility_ids | {p.facility_id})
    rows, total = await svc.repo.list(availability=availability, facility_id=facility_id, visible_to=visible_to,
                                      limit=page.limit, offset=page.offset)
    shown = await _facilities_of_page(svc, [int(r["id"]) for r in rows]) if visible_to is None else None
    return paginated([video_json(r, progress=svc.hub.current.get(r["id"]),
                                 facility_ids=shown.get(int(r["id"]), []) if shown is not None else None)
                      for r in rows], page, total)


async def _facilities_of_page(svc: MediaService, ids: list[int]) -> dict[int, list[int]]:
    """Where each video of a page is visible, in one query (the admin page shows it on every row)."""
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    rows = await svc.db.fetchall(
        f"SELECT video_id, facility_id FROM video_facilities WHERE video_id IN ({marks})"  # noqa: S608
        " ORDER BY video_id, facility_id", tuple(ids))
    out: dict[int, list[int]] = {}
    for row in rows:
        out.setdefault(int(row[0]), []).append(int(row[1]))
    return out


@routes.get(r"/api/v1/videos/{id:\d+}")
@signed_in
@spec(response=VIDEO_SCHEMA)
async def get_video(request: web.Request) -> web.Response:
    """One video; admins also get its facilities, attempts log and live progress."""
    svc = request.app[MEDIA]
    p = principal(request)
    video_id = video_id_of(request)
    if not is_admin(p):
        row = await playable(svc.repo, p, video_id)
        return ok(video_json(row))
    row = await svc.repo.get(video_id)
    if row is None:
        raise not_found("no such video")
    data = video_json(row, facility_ids=await svc.repo.facilities_of(video_id),
                      progress=svc.hub.current.get(video_id))
    data["download_attempts"] = await svc.repo.attempts_log(video_id)
    return ok(data)


@routes.patch(r"/api/v1/videos/{id:\d+}")
@roles(*ADMINS)
@spec(body=obj("title", title={"type": "string", "minLength": 1, "maxLength": 300}), response=VIDEO_SCHEMA)
async def rename_video(request: web.Request) -> web.Response:
    """Change a video's title {title} (1 to 300 characters)."""
    svc = request.app[MEDIA]
    video_id = video_id_of(request)
    title = (await read_json(request)).get("title")
    if not isinstance(title, str) or not title.strip() or len(title.strip()) > 300 or not title.isprintable():
        raise bad_request("invalid_field", "title must be 1 to 300 printable characters", {"field": "title"})
    if await svc.repo.get(video_id) is None:
        raise not_found("no such video")
    await svc.repo.rename(video_id, title.strip())
    return ok(video_json(await svc.repo.get(video_id), facility_ids=await svc.repo.facilities_of(video_id)))


@routes.delete(r"/api/v1/videos/{id:\d+}")
@roles(Role.DEPARTMENT_ADMIN)
@spec(response=obj("id", "deleted", id=ID, deleted={"const": True}))
async def delete_video(request: web.Request) -> web.Response:
    """Remove a video and its files (department admins: only videos of their own facilities)."""
    svc = request.app[MEDIA]
    p = principal(request)
    video_id = video_id_of(request)
    row = await svc.repo.get(video_id)
    if row is None:
        raise not_found("no such video")
    if p.role is not Role.SYSTEM_ADMIN:
        # Deleting removes the file for every facility: a department admin may do it only when the video
        # belongs to its facilities alone (visible nowhere else; if visible nowhere, added by one of them).
        scope = p.facility_ids | {p.facility_id}
        shown = set(await svc.repo.facilities_of(video_id))
        if shown - scope:
            raise ApiError(403, "forbidden", "this video is visible in facilities you do not manage; "
                           "remove your facilities from its visibility instead")
        if not shown:
            adder = row["added_by"]
            home = await svc.db.fetchval("SELECT facility_id FROM users WHERE id = ?", (adder,)) \
                if adder is not None else None
            if adder != p.user_id and home not in scope:
                raise ApiError(403, "forbidden", "this video was added in a facility you do not manage")
    await svc.delete(video_id)
    return ok({"id": video_id, "deleted": True})


@routes.put(r"/api/v1/videos/{id:\d+}/visibility")
@roles(*ADMINS, facility_scoped=True)
@spec(body=obj("facility_ids", facility_ids={**arr(ID), "maxItems": 50}),
      response=obj("id", "facility_ids", id=ID, facility_ids=arr(ID)))
async def set_visibility(request: web.Request) -> web.Response:
    """Set the facilities a video is visible in; admins change only their own facilities."""
    svc = request.app[MEDIA]
    p = principal(request)
    video_id = video_id_of(request)
    body = await read_json(request)
    ids = body.get("facility_ids")
    if not isinstance(ids, list) or len(ids) > 1000 or not all(type(i) is int and i > 0 for i in ids):
        raise bad_request("invalid_facility_ids", "facility_ids must be a list of facility ids")
    if await svc.repo.get(video_id) is None:
        raise not_found("no such video")
    missing = sorted(set(ids) - await svc.repo.existing_facilities(ids))
    if missing:
        raise bad_request("unknown_facility", "some facilities do not exist", {"facility_ids": missing})
    for fid in ids:
        require_facility(p, fid)
    scope = None if p.role is Role.SYSTEM_ADMIN else sorted(p.facility_ids | {p.facility_id})
    await svc.repo.set_visibility(video_id, sorted(set(ids)), scope=scope)
    return ok({"id": video_id, "facility_ids": await svc.repo.facilities_of(video_id)})


@routes.post(r"/api/v1/videos/{id:\d+}/retry")
@roles(*ADMINS)
@spec(status=202, body=obj(), response=VIDEO_SCHEMA)
async def retry_video(request: web.Request) -> web.Response:
    """Manual retry of a video in `error`."""
    svc = request.app[MEDIA]
    video_id = video_id_of(request)
    row = await svc.repo.get(video_id)
    if row is None:
        raise not_found("no such video")
    if row["availability"] != Availability.ERROR.value or row["source_kind"] != "download":
        raise conflict("only a download in error can be retried", {"availability": row["availability"]})
    await svc.retry(video_id)
    return ok(video_json(await svc.repo.get(video_id)), status=202)  # type: ignore[arg-type]


def _number(body: dict[str, Any], key: str, *, required: bool, high: float) -> float:
    value = body.get(key)
    if value is None and not required:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise bad_request("invalid_body", f"{key} must be a number", {"field": key})
    if not 0 <= value <= high:
        raise bad_request("invalid_body", f"{key} must be between 0 and {high:g}", {"field": key})
    return float(value)


@routes.put(r"/api/v1/videos/{id:\d+}/position")
@signed_in
@spec(body=obj("position_s", position_s={"type": "number", "minimum": 0, "maximum": 86400},
                watched_s={"type": "number", "minimum": 0, "maximum": 600}, completed=BOOL),
      response=obj("video_id", "position_s", "completed", "credited_s", video_id=ID, position_s=NUM,
                   completed=BOOL, credited_s={"type": "number", "minimum": 0}))
async def save_position(request: web.Request) -> web.Response:
    """The player reports where the learner is and how long it played since the last report."""
    svc = request.app[MEDIA]
    p = principal(request)
    video_id = video_id_of(request)
    row = await playable(svc.repo, p, video_id)
    body = await read_json(request)
    limit = float(row["duration_s"] or 86400) + 5
    position = min(_number(body, "position_s", required=True, high=limit), limit)
    # one report covers at most a few minutes of playing, so a bad client cannot inflate activity
    watched = _number(body, "watched_s", required=False, high=600)
    completed = body.get("completed", False)
    if not isinstance(completed, bool):
        raise bad_request("invalid_body", "completed must be true or false", {"field": "completed"})
    # credited watch time is capped by the wall-clock time since the previous report and by the duration
    cap = min(float(row["duration_s"]), 600.0) if row["duration_s"] else 600.0
    credited = await svc.repo.report_playing(p.user_id, video_id, p.facility_id, svc.clock.now().date().isoformat(),
                                             position, completed, watched, cap)
    return ok({"video_id": video_id, "position_s": position, "completed": completed,
               "credited_s": round(credited, 3)})


@routes.get(r"/api/v1/videos/{id:\d+}/position")
@signed_in
@spec(response=obj("video_id", "position_s", "completed", video_id=ID, position_s=NUM, completed=BOOL))
async def get_position(request: web.Request) -> web.Response:
    """The caller's resume position (0 if none)."""
    svc = request.app[MEDIA]
    p = principal(request)
    video_id = video_id_of(request)
    await playable(svc.repo, p, video_id)
    row = await svc.repo.position(p.user_id, video_id)
    return ok({"video_id": video_id, "position_s": row["position_s"] if row else 0.0,
               "completed": bool(row["completed"]) if row else False})


async def _still_allowed(db: Database, p: Principal) -> bool:
    """The caller is still an active admin (and, for a cookie, the session still live): checked from the
    database, not a per-process cache, so a deactivation in another worker ends this feed too."""
    row = await db.fetchone("SELECT role, deactivated_at FROM users WHERE id = ?", (p.user_id,))
    if row is None or row["deactivated_at"] is not None or Role(row["role"]) not in ADMIN_ROLES:
        return False
    if p.session_id is not None:
        state = await db.fetchval("SELECT state FROM sessions WHERE id = ?", (int(p.session_id),))
        return state == "active"
    return True


@routes.get("/api/v1/videos/events")
@roles(*ADMINS)
@spec(content_type="text/event-stream")
async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: a snapshot of running downloads, then progress and state changes.

    The caller's standing is re-checked before every event and at least every second, so a deactivated,
    demoted or signed-out admin stops receiving events at once (the feed ends).
    """
    svc = request.app[MEDIA]
    p = principal(request)
    queue = svc.hub.subscribe()
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                       "X-Accel-Buffering": "no"})
    loop = asyncio.get_running_loop()
    try:
        await resp.prepare(request)
        if request.method == "HEAD":
            # aiohttp does not drop body writes after a HEAD: they would reach the client as the start of
            # its next response on this keep-alive connection
            return resp
        await resp.write(_SSE_RETRY)
        for vid, prog in list(svc.hub.current.items()):
            await resp.write(_sse({"type": "progress", "video_id": vid, **prog}))
        quiet_since = loop.time()
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), _SSE_RECHECK_S)
            except TimeoutError:
                if not await _still_allowed(svc.db, p):
                    break
                if loop.time() - quiet_since >= _SSE_KEEPALIVE_S:
                    await resp.write(b": keep-alive\n\n")
                    quiet_since = loop.time()
                continue
            if event is None or not await _still_allowed(svc.db, p):
                break
            await resp.write(_sse(event))
            quiet_since = loop.time()
    except ConnectionResetError:
        return resp
    finally:
        svc.hub.unsubscribe(queue)
    with contextlib.suppress(ConnectionResetError):
        await resp.write_eof()
    return resp


def _sse(event: dict[str, Any]) -> bytes:
    return f"event: {event.get('type', 'message')}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n".encode()
