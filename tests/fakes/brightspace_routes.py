"""Routes of the fake Brightspace (see tests/fakes/brightspace.py for the behaviour and the switches)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from tests.fakes.brightspace import FAKE_KEY, INSTRUCTOR_ROLE, LEARNER_ROLE, ROOT_ORG, VERSIONS, FakeBrightspace

routes = web.RouteTableDef()
LP = "/d2l/api/lp/{v}"
LE = "/d2l/api/le/{v}"


def fake(request: web.Request) -> FakeBrightspace:
    """The fake behind this app."""
    return request.app[FAKE_KEY]


def check_version(request: web.Request, product: str) -> None:
    """Unknown product versions are a 404 like Brightspace's."""
    if request.match_info["v"] not in VERSIONS[product]:
        raise web.HTTPNotFound(text="")


def number(raw: str) -> int:
    """A D2LID path segment, 404 when it is not one."""
    if not raw.isdigit():
        raise web.HTTPNotFound(text="")
    return int(raw)


def paged(request: web.Request, items: list[dict[str, Any]], key: Callable[[dict[str, Any]], Any]) -> web.Response:
    """A PagedResultSet: items after the bookmark (the last id of the previous page), page_size at a time."""
    f = fake(request)
    bookmark = request.query.get("bookmark", "")
    start = 0
    if bookmark:
        ids = [str(key(item)) for item in items]
        start = ids.index(bookmark) + 1 if bookmark in ids else len(items)
    chunk = items[start : start + f.page_size]
    more = start + f.page_size < len(items)
    return web.json_response({"PagingInfo": {"Bookmark": str(key(chunk[-1])) if chunk else "",
                                             "HasMoreItems": more}, "Items": chunk})


async def body(request: web.Request) -> dict[str, Any]:
    """The JSON body, 400 otherwise."""
    try:
        data = await request.json()
    except json.JSONDecodeError:
        raise web.HTTPBadRequest(text="Invalid JSON") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="Invalid JSON")
    return data


@routes.post("/core/connect/token")
async def token(request: web.Request) -> web.Response:
    """OAuth 2.0 token endpoint."""
    return await fake(request).token(request)


@routes.get("/d2l/api/versions/")
async def versions(request: web.Request) -> web.Response:
    """Product versions."""
    return web.json_response([{"ProductCode": code, "LatestVersion": vs[-1], "SupportedVersions": vs}
                              for code, vs in VERSIONS.items()])


@routes.get(LP + "/users/whoami")
async def whoami(request: web.Request) -> web.Response:
    """The calling user."""
    check_version(request, "lp")
    return web.json_response({"Identifier": "169", "FirstName": "Api", "LastName": "Service",
                              "UniqueName": "apiservice", "ProfileIdentifier": "x9"})


@routes.get(LP + "/organization/info")
async def organization(request: web.Request) -> web.Response:
    """The root org unit."""
    check_version(request, "lp")
    return web.json_response({"Identifier": str(ROOT_ORG), "Name": "Fake University", "TimeZone": "UTC"})


@routes.get(LP + "/roles/")
async def roles(request: web.Request) -> web.Response:
    """Roles."""
    check_version(request, "lp")
    return web.json_response([
        {"Identifier": str(INSTRUCTOR_ROLE), "DisplayName": "Instructor", "Code": None},
        {"Identifier": str(LEARNER_ROLE), "DisplayName": "Learner", "Code": None},
    ])


def bad_users_page(request: web.Request, f: FakeBrightspace, users: list[dict[str, Any]]) -> web.Response:
    """What a broken Brightspace (or something in front of it) sends instead of a users page."""
    mode = f.bad_users
    bookmark = request.query.get("bookmark", "")
    first = users[: f.page_size]
    if mode == "html":
        return web.Response(text="<html><body><h1>Maintenance</h1></body></html>", content_type="text/html")
    if mode == "huge":
        filler = [{**first[0], "FirstName": "x" * 1000}] * 10_500
        return web.json_response({"PagingInfo": {"Bookmark": "1", "HasMoreItems": False}, "Items": filler})
    if mode == "loop":
        return web.json_response({"PagingInfo": {"Bookmark": "loop-1", "HasMoreItems": True}, "Items": first})
    if mode == "duplicates":
        # Every page repeats the previous page's users before its own.
        start = int(bookmark) if bookmark.isdigit() else 0
        chunk = users[max(0, start - f.page_size) : start + f.page_size]
        more = start + f.page_size < len(users)
        return web.json_response({"PagingInfo": {"Bookmark": str(start + f.page_size), "HasMoreItems": more},
                                  "Items": chunk})
    if mode == "string_ids":
        items = [{**u, "UserId": str(u["UserId"]), "OrgId": str(u["OrgId"])} for u in first]
        return web.json_response({"PagingInfo": {"Bookmark": "", "HasMoreItems": False}, "Items": items})
    if mode == "missing_fields":
        items = [{k: v for k, v in u.items() if k != "UserId"} for u in first]
        return web.json_response({"PagingInfo": {"Bookmark": "", "HasMoreItems": False}, "Items": items})
    if mode == "wrong_types":
        items = [{**u, "FirstName": {"Text": u["FirstName"]}} for u in first]
        return web.json_response({"PagingInfo": {"Bookmark": "", "HasMoreItems": False}, "Items": items})
    raise AssertionError(f"unknown bad_users mode {mode}")


@routes.get(LP + "/users/")
async def list_users(request: web.Request) -> web.Response:
    """PagedResultSet of UserData; ?orgDefinedId= answers a list, ?userName= one user."""
    check_version(request, "lp")
    f = fake(request)
    users = list(f.users.values())
    if "orgDefinedId" in request.query:
        wanted = request.query["orgDefinedId"]
        return web.json_response([u for u in users if u["OrgDefinedId"] == wanted])
    if "userName" in request.query:
        wanted = request.query["userName"].lower()
        match = [u for u in users if u["UserName"].lower() == wanted]
        return web.json_response(match[0]) if match else web.Response(status=404)
    if f.bad_users == "huge_stream":
        # 10 MB of JSON without a Content-Length (chunked): only counting the bytes can stop it.
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b'{"PagingInfo": {"Bookmark": "1", "HasMoreItems": false}, "Items": [')
        row = json.dumps({**users[0], "FirstName": "x" * 1000}).encode() + b","
        for _ in range(10_000):
            await response.write(row)
        await response.write(b"{}]}")
        await response.write_eof()
        return response
    if f.bad_users:
        return bad_users_page(request, f, users)
    return paged(request, users, lambda u: u["UserId"])


def user_problems(f: FakeBrightspace, data: dict[str, Any], uid: int | None) -> str | None:
    """Brightspace's validation of Create/UpdateUserData (plain-text 400 bodies)."""
    for key in ("FirstName", "LastName", "UserName"):
        if not isinstance(data.get(key), str) or (key != "LastName" and not data[key]):
            return f"Invalid {key}"
    name = data["UserName"].lower()
    if any(u["UserName"].lower() == name and u["UserId"] != uid for u in f.users.values()):
        return "Username is already in use"
    return None


@routes.post(LP + "/users/")
async def create_user(request: web.Request) -> web.Response:
    """CreateUserData → UserData."""
    check_version(request, "lp")
    f = fake(request)
    data = await body(request)
    problem = user_problems(f, data, None)
    if problem is None and str(data.get("RoleId")) not in (str(LEARNER_ROLE), str(INSTRUCTOR_ROLE)):
        problem = "Invalid RoleId"
    if problem is not None:
        f.rejected_writes.append(("create_user", data))
        return web.Response(status=400, text=problem, content_type="text/plain")
    user = f.add_user(data["FirstName"], data["LastName"], org_defined_id=data.get("OrgDefinedId"),
                      user_name=data["UserName"], email=data.get("ExternalEmail"),
                      active=bool(data.get("IsActive", True)))
    f.user_creates[data.get("OrgDefinedId") or ""] += 1
    return web.json_response(user)


@routes.put(LP + "/users/{user_id}")
async def update_user(request: web.Request) -> web.Response:
    """UpdateUserData → UserData."""
    check_version(request, "lp")
    f = fake(request)
    user = f.users.get(number(request.match_info["user_id"]))
    if user is None:
        return web.Response(status=404)
    data = await body(request)
    problem = user_problems(f, data, user["UserId"])
    if problem is not None:
        f.rejected_writes.append(("update_user", data))
        return web.Response(status=400, text=problem, content_type="text/plain")
    for key in ("OrgDefinedId", "FirstName", "MiddleName", "LastName", "ExternalEmail", "UserName"):
        user[key] = data.get(key)
    activation = data.get("Activation")
    if isinstance(activation, dict) and isinstance(activation.get("IsActive"), bool):
        user["Activation"] = {"IsActive": activation["IsActive"]}
    user["DisplayName"] = f"{user['FirstName']} {user['LastName']}".strip()
    return web.json_response(user)


@routes.put(LP + "/users/{user_id}/activation")
async def activation(request: web.Request) -> web.Response:
    """UserActivationData."""
    check_version(request, "lp")
    f = fake(request)
    user = f.users.get(number(request.match_info["user_id"]))
    if user is None:
        return web.Response(status=404)
    data = await body(request)
    if not isinstance(data.get("IsActive"), bool):
        return web.Response(status=400, text="Invalid IsActive", content_type="text/plain")
    user["Activation"] = {"IsActive": data["IsActive"]}
    return web.json_response(user["Activation"])


@routes.get(LP + "/orgstructure/{ou}/descendants/paged/")
async def descendants(request: web.Request) -> web.Response:
    """PagedResultSet of OrgUnit below the root, filtered by ouTypeId."""
    check_version(request, "lp")
    f = fake(request)
    if number(request.match_info["ou"]) != ROOT_ORG:
        return web.Response(status=404)
    wanted = request.query.get("ouTypeId")
    units = [u for u in f.org_units.values() if wanted in (None, str(u["Type"]["Id"]))]
    return paged(request, units, lambda u: u["Identifier"])


def enrollment_data(ou: int, uid: int, role: int) -> dict[str, Any]:
    """EnrollmentData."""
    return {"OrgUnitId": ou, "UserId": uid, "RoleId": role, "IsCascading": False}


@routes.get(LP + "/enrollments/orgUnits/{ou}/users/")
async def classlist(request: web.Request) -> web.Response:
    """PagedResultSet of OrgUnitUser, optionally one role."""
    check_version(request, "lp")
    f = fake(request)
    ou = number(request.match_info["ou"])
    if ou not in f.org_units:
        return web.Response(status=404)
    role = request.query.get("roleId")
    items = []
    for (unit, uid), rid in f.enrollments.items():
        if unit != ou or (role is not None and str(rid) != role) or uid not in f.users:
            continue
        user = f.users[uid]
        items.append({"User": {"Identifier": str(uid), "DisplayName": user["DisplayName"],
                               "EmailAddress": user["ExternalEmail"], "OrgDefinedId": user["OrgDefinedId"],
                               "ProfileBadgeUrl": None, "ProfileIdentifier": f"p{uid}"},
                      "Role": {"Id": rid, "Code": None, "Name": "Learner" if rid == LEARNER_ROLE else "Instructor"}})
    items.sort(key=lambda i: int(i["User"]["Identifier"]))
    return paged(request, items, lambda i: i["User"]["Identifier"])


@routes.get(LP + "/enrollments/orgUnits/{ou}/users/{user_id}")
async def get_enrollment(request: web.Request) -> web.Response:
    """EnrollmentData of one user, 404 when not enrolled."""
    check_version(request, "lp")
    f = fake(request)
    ou, uid = number(request.match_info["ou"]), number(request.match_info["user_id"])
    role = f.enrollments.get((ou, uid))
    return web.json_response(enrollment_data(ou, uid, role)) if role is not None else web.Response(status=404)


@routes.delete(LP + "/enrollments/orgUnits/{ou}/users/{user_id}")
async def delete_enrollment(request: web.Request) -> web.Response:
    """Unenroll; answers the EnrollmentData that was removed."""
    check_version(request, "lp")
    f = fake(request)
    ou, uid = number(request.match_info["ou"]), number(request.match_info["user_id"])
    role = f.enrollments.pop((ou, uid), None)
    return web.json_response(enrollment_data(ou, uid, role)) if role is not None else web.Response(status=404)


@routes.post(LP + "/enrollments/")
async def create_enrollment(request: web.Request) -> web.Response:
    """CreateEnrollmentData → EnrollmentData (a second POST for the same pair just answers it again)."""
    check_version(request, "lp")
    f = fake(request)
    data = await body(request)
    ou, uid, role = data.get("OrgUnitId"), data.get("UserId"), data.get("RoleId")
    if not all(isinstance(v, int) for v in (ou, uid, role)) or ou not in f.org_units or uid not in f.users:
        f.rejected_writes.append(("enroll", data))
        return web.Response(status=404 if isinstance(ou, int) and isinstance(uid, int) else 400,
                            text="", content_type="text/plain")
    f.enrollments[(ou, uid)] = role
    f.enroll_creates[(ou, uid)] += 1
    return web.json_response(enrollment_data(ou, uid, role))


@routes.get(LE + "/{ou}/grades/")
async def grade_objects(request: web.Request) -> web.Response:
    """Grade objects of an org unit (a plain array)."""
    check_version(request, "le")
    f = fake(request)
    ou = number(request.match_info["ou"])
    if ou not in f.org_units:
        return web.Response(status=404)
    return web.json_response(f.grades[ou])


@routes.get(LE + "/{ou}/grades/{gid}/values/")
async def grade_values(request: web.Request) -> web.Response:
    """ObjectListPage of {User, GradeValue}, `Next` an absolute URL."""
    check_version(request, "le")
    f = fake(request)
    ou, gid = number(request.match_info["ou"]), number(request.match_info["gid"])
    values = f.grade_values.get((ou, gid))
    if values is None:
        return web.Response(status=404)
    try:
        size = max(1, min(int(request.query.get("pageSize", "100")), 200))
    except ValueError:
        size = 100
    after = request.query.get("bookmark", "")
    uids = sorted(values)
    start = next((i for i, u in enumerate(uids) if str(u) == after), -1) + 1 if after else 0
    chunk = uids[start : start + size]
    objects = []
    for uid in chunk:
        user = f.users.get(uid, {})
        objects.append({"User": {"Identifier": str(uid), "DisplayName": user.get("DisplayName", ""),
                                 "EmailAddress": user.get("ExternalEmail"), "OrgDefinedId": user.get("OrgDefinedId"),
                                 "ProfileBadgeUrl": None, "ProfileIdentifier": f"p{uid}"},
                        "GradeValue": values[uid]})
    nxt = None
    if start + size < len(uids):
        origin = f.foreign_next or f.base_url
        nxt = f"{origin}{request.path}?pageSize={size}&bookmark={chunk[-1]}"
    return web.json_response({"Next": nxt, "Objects": objects})
