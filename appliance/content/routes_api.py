"""Library management API: list, detail, visibility, featured, favourites, block lists, rescan, imports."""

import json
from typing import Any

from aiohttp import web

from appliance.bus.subjects import content_rescan
from appliance.content.blocklist import BlocklistError, validate_patterns
from appliance.content.directory import can_see
from appliance.content.downloads import ImportState, file_name_from_url
from appliance.content.keys import CONTENT
from appliance.core.blocking import run_blocking
from appliance.core.errors import ApiError, bad_request, conflict, not_found, unavailable
from appliance.core.process import ProcessRole
from appliance.keys import BUS, CONFIG, DB, ROLE
from appliance.web.openapi import BOOL, ID, INT, PAGE_QUERY, STR, TIME, arr, nullable, obj, spec, text
from appliance.web.policy import ADMIN_ROLES, Principal, Role, principal, require_facility, roles, signed_in
from appliance.web.responses import ok, page_params, paginated, read_json

ADMINS = tuple(ADMIN_ROLES)
STATES = ("ready", "error", "missing")
COLUMNS = ("id, uuid, slug, name, title, description, language, creator, publisher, date, tags, category, "
           "flavour, article_count, media_count, size, state, error, has_fulltext_index, has_main_page, "
           "illustration IS NOT NULL AS has_illustration, created_at, updated_at")
routes = web.RouteTableDef()
LIBRARY_SCHEMA = obj(
    "id", "uuid", "slug", "name", "title", "state", "favorite", "featured", "url",
    id=ID, uuid=STR, slug=STR, name=STR, title=STR, description=STR, language=STR, creator=STR, publisher=STR,
    date=STR, tags=STR, category=STR, flavour=STR, article_count=INT, media_count=INT, size=INT,
    state={"enum": list(STATES)}, error=nullable(STR), has_fulltext_index=BOOL, has_main_page=BOOL,
    has_illustration=BOOL, created_at=TIME, updated_at=TIME, favorite=BOOL, featured=BOOL, url=STR,
    visible_facility_ids=arr(ID),
)
"""A library as its caller sees it (visible_facility_ids for staff only)."""
IMPORT_SCHEMA = obj(
    "id", "url", "file_name", "state", "bytes_done",
    id=ID, url=STR, file_name=STR, state={"enum": ["queued", "downloading", "verifying", "done", "failed"]},
    bytes_done=INT, bytes_total=nullable(INT), checksum_algo=nullable(STR), checksum=nullable(STR),
    error=nullable(STR), library_id=nullable(INT), created_at=TIME, updated_at=TIME,
)
"""A library import and its progress."""
FACILITY_IDS = obj("facility_ids", facility_ids={**arr(ID), "maxItems": 50})


def _library_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 12:
        raise bad_request("invalid_parameter", "library id must be a positive integer", {"parameter": "id"})
    return int(raw)


async def _visible_library(request: web.Request, p: Principal) -> dict[str, Any]:
    """The row of a library the caller may see (404 otherwise), with its per-caller fields."""
    service = request.app[CONTENT]
    await service.refresh()
    lib_id = _library_id(request)
    lib = service.directory.by_id.get(lib_id)
    if lib is None or not can_see(p, lib, None):
        raise not_found("no such library")
    row = await request.app[DB].fetchone(f"SELECT {COLUMNS} FROM libraries WHERE id = ?", (lib_id,))
    if row is None:
        raise not_found("no such library")
    return (await _decorate(request, p, [row]))[0]


async def _decorate(request: web.Request, p: Principal, rows: list[Any]) -> list[dict[str, Any]]:
    """Rows as JSON with featured/favorite for the caller, and visibility facilities for admins."""
    db = request.app[DB]
    ids = [r["id"] for r in rows]
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    favs = {r["library_id"] for r in await db.fetchall(
        f"SELECT library_id FROM library_favorites WHERE user_id = ? AND library_id IN ({marks})",
        (p.user_id, *ids))}
    featured = {r["library_id"] for r in await db.fetchall(
        f"SELECT library_id FROM library_featured WHERE facility_id = ? AND library_id IN ({marks})",
        (p.facility_id, *ids))}
    service = request.app[CONTENT]
    out = []
    for r in rows:
        item = dict(r)
        for flag in ("has_fulltext_index", "has_main_page", "has_illustration"):
            item[flag] = bool(item[flag])
        item["favorite"] = r["id"] in favs
        item["featured"] = r["id"] in featured
        item["url"] = f"/library/read/{r['slug']}/"  # the reader (app origin), which frames the content origin
        if p.role in ADMIN_ROLES:
            lib = service.directory.by_id.get(r["id"])
            facs = sorted(lib.facilities) if lib else []
            item["visible_facility_ids"] = [f for f in facs if p.role is Role.SYSTEM_ADMIN or f in p.facility_ids]
        out.append(item)
    return out


@routes.get("/api/v1/libraries")
@signed_in
@spec(query={**PAGE_QUERY, "state": {"enum": list(STATES)}, "language": text(20),
             "visibility": {"enum": ["visible", "hidden", "featured", "favorite", "all"]}},
      response=arr(LIBRARY_SCHEMA))
async def list_libraries(request: web.Request) -> web.Response:
    """Paginated list with filters state, language, visibility (visible|hidden|featured|favorite|all)."""
    p = principal(request)
    page = page_params(request)
    service = request.app[CONTENT]
    await service.refresh()
    state = request.query.get("state", "")
    if state and state not in STATES:
        raise bad_request("invalid_parameter", f"state must be one of {', '.join(STATES)}", {"parameter": "state"})
    visibility = request.query.get("visibility", "all" if p.role in ADMIN_ROLES else "visible")
    allowed = ("visible", "hidden", "featured", "favorite", "all")
    if visibility not in allowed or (p.role not in ADMIN_ROLES and visibility in ("hidden", "all")):
        raise bad_request("invalid_parameter", "visibility is not allowed", {"parameter": "visibility"})
    ids = [lib.id for lib in service.directory.by_id.values() if can_see(p, lib, None)]
    if p.role is Role.LEARNER:
        state = "ready"
    where, params = ["id IN (SELECT value FROM json_each(?))"], [json.dumps(ids)]
    if state:
        where.append("state = ?")
        params.append(state)
    if request.query.get("language"):
        where.append("language = ?")
        params.append(request.query["language"][:20])
    facs = json.dumps(sorted(p.facility_ids))
    if visibility == "visible":
        where.append("id IN (SELECT library_id FROM library_visibility WHERE facility_id IN "
                     "(SELECT value FROM json_each(?)))")
        params.append(facs)
    elif visibility == "hidden":
        where.append("id NOT IN (SELECT library_id FROM library_visibility WHERE facility_id IN "
                     "(SELECT value FROM json_each(?)))")
        params.append(facs)
    elif visibility == "featured":
        where.append("id IN (SELECT library_id FROM library_featured WHERE facility_id = ?)")
        params.append(p.facility_id)
    elif visibility == "favorite":
        where.append("id IN (SELECT library_id FROM library_favorites WHERE user_id = ?)")
        params.append(p.user_id)
    clause = " AND ".join(where)
    db = request.app[DB]
    total = await db.fetchval(f"SELECT COUNT(*) FROM libraries WHERE {clause}", params)
    rows = await db.fetchall(f"SELECT {COLUMNS} FROM libraries WHERE {clause} ORDER BY title, id LIMIT ? OFFSET ?",
                             (*params, page.limit, page.offset))
    return paginated(await _decorate(request, p, rows), page, total)


@routes.get(r"/api/v1/libraries/{id:\d+}")
@signed_in
@spec(response=LIBRARY_SCHEMA)
async def get_library(request: web.Request) -> web.Response:
    """One library."""
    return ok(await _visible_library(request, principal(request)))


async def _audit(tx: Any, library_id: int, p: Principal, action: str, details: dict[str, Any]) -> None:
    await tx.execute("INSERT INTO library_audit (library_id, actor_user_id, action, details) VALUES (?, ?, ?, ?)",
                     (library_id, p.user_id, action, json.dumps(details, ensure_ascii=False)))


def _facility_ids(body: dict[str, Any]) -> list[int]:
    ids = body.get("facility_ids")
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids):
        raise bad_request("invalid_body", "facility_ids must be a list of facility ids", {"field": "facility_ids"})
    if len(ids) > 10000:
        raise bad_request("invalid_body", "too many facility ids", {"field": "facility_ids"})
    return sorted(set(ids))


@routes.put(r"/api/v1/libraries/{id:\d+}/visibility")
@roles(*ADMINS, facility_scoped=True)
@spec(body=FACILITY_IDS, response=LIBRARY_SCHEMA)
async def put_visibility(request: web.Request) -> web.Response:
    """Set the facilities that see a library; admins change only facilities they manage."""
    p = principal(request)
    lib = await _visible_library(request, p)
    await set_visibility(request, p, lib, _facility_ids(await read_json(request)))
    return ok(await _visible_library(request, p))


async def set_visibility(request: web.Request, p: Principal, lib: dict[str, Any], wanted: list[int]) -> None:
    """Make a library visible to exactly these of the facilities the caller manages (others are kept)."""
    for fac in wanted:
        require_facility(p, fac)
    db = request.app[DB]
    known = {r["id"] for r in await db.fetchall("SELECT id FROM facilities")}
    if unknown := [f for f in wanted if f not in known]:
        raise bad_request("unknown_facilities", "some facilities do not exist", {"facility_ids": unknown})
    async with db.transaction() as tx:
        cur = await tx.execute("SELECT facility_id FROM library_visibility WHERE library_id = ?", (lib["id"],))
        before = sorted(r[0] for r in await cur.fetchall())
        managed = [f for f in before if p.role is Role.SYSTEM_ADMIN or f in p.facility_ids]
        after = sorted(set(before) - set(managed) | set(wanted))
        for fac in set(managed) - set(wanted):
            await tx.execute("DELETE FROM library_visibility WHERE library_id = ? AND facility_id = ?",
                             (lib["id"], fac))
        for fac in set(wanted) - set(before):
            await tx.execute("INSERT INTO library_visibility (library_id, facility_id) VALUES (?, ?)",
                             (lib["id"], fac))
        if before != after:
            await _audit(tx, lib["id"], p, "visibility", {"before": before, "after": after})
    await request.app[CONTENT].refresh(force=True)


@routes.put(r"/api/v1/libraries/{id:\d+}/featured")
@roles(*ADMINS, facility_scoped=True)
@spec(body=obj("featured", featured=BOOL, facility_id=ID),
      response=obj("id", "facility_id", "featured", id=ID, facility_id=INT, featured=BOOL))
async def put_featured(request: web.Request) -> web.Response:
    """Feature or unfeature a library for a facility (default: the admin's own)."""
    p = principal(request)
    lib = await _visible_library(request, p)
    body = await read_json(request)
    featured = body.get("featured")
    facility = body.get("facility_id", p.facility_id)
    if not isinstance(featured, bool):
        raise bad_request("invalid_body", "featured must be true or false", {"field": "featured"})
    if not isinstance(facility, int) or isinstance(facility, bool):
        raise bad_request("invalid_body", "facility_id must be an integer", {"field": "facility_id"})
    await set_featured(request, p, lib, featured, facility)
    return ok({"id": lib["id"], "facility_id": facility, "featured": featured})


async def set_featured(request: web.Request, p: Principal, lib: dict[str, Any], featured: bool, facility: int) -> None:
    """Feature or unfeature a library for one facility the caller manages."""
    require_facility(p, facility)
    async with request.app[DB].transaction() as tx:
        if featured:
            cur = await tx.execute("INSERT OR IGNORE INTO library_featured (library_id, facility_id) VALUES (?, ?)",
                                   (lib["id"], facility))
        else:
            cur = await tx.execute("DELETE FROM library_featured WHERE library_id = ? AND facility_id = ?",
                                   (lib["id"], facility))
        if cur.rowcount:
            await _audit(tx, lib["id"], p, "featured", {"facility_id": facility, "featured": featured})


@routes.put(r"/api/v1/libraries/{id:\d+}/favorite")
@signed_in
@spec(body=obj(), response=obj("id", "favorite", id=ID, favorite={"const": True}))
async def put_favorite(request: web.Request) -> web.Response:
    """Add a library to the caller's favourites."""
    p = principal(request)
    lib = await _visible_library(request, p)
    await request.app[DB].execute("INSERT OR IGNORE INTO library_favorites (library_id, user_id) VALUES (?, ?)",
                                  (lib["id"], p.user_id))
    return ok({"id": lib["id"], "favorite": True})


@routes.delete(r"/api/v1/libraries/{id:\d+}/favorite")
@signed_in
@spec(response=obj("id", "favorite", id=ID, favorite={"const": False}))
async def delete_favorite(request: web.Request) -> web.Response:
    """Remove a library from the caller's favourites."""
    p = principal(request)
    lib = await _visible_library(request, p)
    await request.app[DB].execute("DELETE FROM library_favorites WHERE library_id = ? AND user_id = ?",
                                  (lib["id"], p.user_id))
    return ok({"id": lib["id"], "favorite": False})


@routes.get(r"/api/v1/libraries/{id:\d+}/blocklist")
@roles(*ADMINS)
@spec(response=obj("patterns", "history", patterns=arr(STR),
                   history=arr(obj("at", at=TIME, by=nullable(INT), added=arr(STR), removed=arr(STR)))))
async def get_blocklist(request: web.Request) -> web.Response:
    """The library's blocked paths and patterns, with the latest changes (libraries of the caller's facilities)."""
    p = principal(request)
    lib = await _visible_library(request, p)
    if p.role is not Role.SYSTEM_ADMIN and not (
            request.app[CONTENT].directory.by_id[lib["id"]].facilities & (p.facility_ids | {p.facility_id})):
        raise not_found("no such library")
    db = request.app[DB]
    patterns = [r["pattern"] for r in await db.fetchall(
        "SELECT pattern FROM library_blocklist WHERE library_id = ? ORDER BY pattern", (lib["id"],))]
    audit = [{"at": r["created_at"], "by": r["actor_user_id"], **json.loads(r["details"])}
             for r in await db.fetchall("SELECT * FROM library_audit WHERE library_id = ? AND action = 'blocklist'"
                                        " ORDER BY id DESC LIMIT 20", (lib["id"],))]
    return ok({"patterns": patterns, "history": audit})


@routes.put(r"/api/v1/libraries/{id:\d+}/blocklist")
@roles(Role.DEPARTMENT_ADMIN, Role.SYSTEM_ADMIN)
@spec(body=obj("patterns", patterns={**arr(text(200, 1)), "maxItems": 20}),
      response=obj("patterns", "added", "removed", patterns=arr(STR), added=arr(STR), removed=arr(STR)))
async def put_blocklist(request: web.Request) -> web.Response:
    """Replace the block list (it applies to every facility, so facility admins may only read it).

    One list per library, applied in every facility that sees it: a department admin may change it only
    when every one of those facilities is its own (a shared library's list is the system admin's).
    """
    p = principal(request)
    lib = await _visible_library(request, p)
    patterns, added, removed = await set_blocklist(request, p, lib, (await read_json(request)).get("patterns"))
    return ok({"patterns": patterns, "added": added, "removed": removed})


async def set_blocklist(request: web.Request, p: Principal, lib: dict[str, Any],
                        raw: Any) -> tuple[list[str], list[str], list[str]]:
    """Replace a library's block list; returns (patterns, added, removed).

    One list per library, applied in every facility that sees it: a department admin may change it only
    when every one of those facilities is its own (a shared library's list is the system admin's).
    """
    if p.role is not Role.SYSTEM_ADMIN:
        shown = request.app[CONTENT].directory.by_id[lib["id"]].facilities
        if not shown or not shown <= (p.facility_ids | {p.facility_id}):
            raise ApiError(403, "forbidden", "this library is visible in facilities you do not manage (or in "
                           "none yet); its block list is a system admin's to change")
    try:
        patterns = validate_patterns(raw)
    except BlocklistError as exc:
        raise bad_request("invalid_body", str(exc), {"field": "patterns"}) from None
    async with request.app[DB].transaction() as tx:
        cur = await tx.execute("SELECT pattern FROM library_blocklist WHERE library_id = ?", (lib["id"],))
        before = {r[0] for r in await cur.fetchall()}
        added, removed = sorted(set(patterns) - before), sorted(before - set(patterns))
        for pat in removed:
            await tx.execute("DELETE FROM library_blocklist WHERE library_id = ? AND pattern = ?", (lib["id"], pat))
        for pat in added:
            await tx.execute("INSERT INTO library_blocklist (library_id, pattern) VALUES (?, ?)", (lib["id"], pat))
        if added or removed:
            await _audit(tx, lib["id"], p, "blocklist", {"added": added, "removed": removed})
    await request.app[CONTENT].refresh(force=True)
    return sorted(patterns), added, removed


@routes.post("/api/v1/libraries/rescan")
@roles(Role.SYSTEM_ADMIN)
@spec(body=obj(), response=obj("added", "updated", "missing", "errors", "unchanged", added=arr(STR),
                               updated=arr(STR), missing=arr(STR), errors=arr(STR), unchanged=INT))
async def rescan(request: web.Request) -> web.Response:
    """Scan the content root now: new files become libraries, vanished ones become missing."""
    return ok(await run_rescan(request))


async def run_rescan(request: web.Request) -> dict[str, Any]:
    """Rescan in the primary (asked over NATS from a worker); returns what changed."""
    service = request.app[CONTENT]
    if request.app[ROLE] is ProcessRole.PRIMARY:
        result: dict[str, Any] = (await service.rescan()).as_dict()
        return result
    try:
        reply = await request.app[BUS].nc.request(content_rescan(), b"", timeout=120)
        body = json.loads(reply.data)
    except Exception as exc:  # NATS down or the primary busy: say so rather than scan from here
        raise unavailable(f"the primary process did not answer the rescan request: {type(exc).__name__}",
                          5) from None
    if "error" in body:
        raise ApiError(500, "rescan_failed", body["error"])
    await service.refresh(force=True)
    data: dict[str, Any] = body["data"]
    return data


def _import_json(row: Any) -> dict[str, Any]:
    return {k: row[k] for k in ("id", "url", "file_name", "state", "bytes_done", "bytes_total", "checksum_algo",
                                "checksum", "error", "library_id", "created_at", "updated_at")}


@routes.post("/api/v1/libraries/import")
@roles(Role.SYSTEM_ADMIN)
@spec(status=202, body=obj("url", url=text(2000), checksum_algo={"enum": ["sha256", "md5"]},
                           checksum={"type": "string", "pattern": "^[0-9a-f]{32,64}$"}),
      response=IMPORT_SCHEMA, links={"GetImport": ("get", "/api/v1/libraries/imports/{id}", "/data/id")})
async def start_import(request: web.Request) -> web.Response:
    """Queue a download; the primary fetches it (resumable) and adds it to the library."""
    p = principal(request)
    body = await read_json(request)
    return ok(_import_json(await queue_import(request, p, body.get("url"), body.get("checksum_algo"),
                                              body.get("checksum"))), status=202)


async def queue_import(request: web.Request, p: Principal, url: Any, algo: Any, digest: Any) -> Any:
    """Queue a library download for the primary; returns the library_imports row."""
    if not isinstance(url, str) or len(url) > 2000:
        raise bad_request("invalid_body", "url must be a string", {"field": "url"})
    try:
        name = file_name_from_url(url)
    except ValueError as exc:
        raise bad_request("invalid_url", str(exc), {"field": "url"}) from None
    if digest is not None and (algo not in ("sha256", "md5") or not isinstance(digest, str)):
        raise bad_request("invalid_body", "checksum needs checksum_algo sha256 or md5", {"field": "checksum"})
    db = request.app[DB]
    root = request.app[CONFIG].paths.content_root / "zim"
    busy = await db.fetchval("SELECT id FROM library_imports WHERE file_name = ? AND state IN (?, ?, ?)",
                             (name, "queued", "downloading", "verifying"))
    if busy or await run_blocking("io", (root / name).exists):
        raise conflict(f"{name} is already in the library or being imported", {"file_name": name})
    res = await db.execute(
        "INSERT INTO library_imports (url, file_name, state, checksum_algo, checksum, requested_by)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (url, name, ImportState.QUEUED.value, algo if digest else None, digest.lower() if digest else None,
         p.user_id))
    return await db.fetchone("SELECT * FROM library_imports WHERE id = ?", (res.lastrowid,))


@routes.get("/api/v1/libraries/imports")
@roles(Role.SYSTEM_ADMIN)
@spec(query=PAGE_QUERY, response=arr(IMPORT_SCHEMA))
async def list_imports(request: web.Request) -> web.Response:
    """Imports with their progress, newest first."""
    page = page_params(request)
    db = request.app[DB]
    total = await db.fetchval("SELECT COUNT(*) FROM library_imports")
    rows = await db.fetchall("SELECT * FROM library_imports ORDER BY id DESC LIMIT ? OFFSET ?",
                             (page.limit, page.offset))
    return paginated([_import_json(r) for r in rows], page, total)


@routes.get(r"/api/v1/libraries/imports/{id:\d+}")
@roles(Role.SYSTEM_ADMIN)
@spec(response=IMPORT_SCHEMA)
async def get_import(request: web.Request) -> web.Response:
    """One import and its progress."""
    row = await request.app[DB].fetchone("SELECT * FROM library_imports WHERE id = ?", (_library_id(request),))
    if row is None:
        raise not_found("no such import")
    return ok(_import_json(row))
