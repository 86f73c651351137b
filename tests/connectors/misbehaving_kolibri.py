"""A small stand-in that answers like Kolibri 0.19 for the sign-in and the lists, then misbehaves on demand.

Only for the fault cases (a real Kolibri cannot be made to send a 10 MB body or an HTML page with 200); the
main flow is tested against the real Kolibri.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

FACILITY = "f" * 32
ADMIN_ID = "a" * 32


def user(i: int) -> dict[str, Any]:
    """A facility user as Kolibri 0.19 lists it."""
    return {"id": f"{i:032x}", "username": f"user_{i}", "full_name": f"User {i}", "facility": FACILITY,
            "id_number": "", "gender": "", "birth_year": "", "extra_demographics": None,
            "date_joined": "2026-12-06T23:41:54.643627Z", "picture_password": None, "is_superuser": False,
            "roles": []}


class MisbehavingKolibri:
    """`fault` names what goes wrong on GET /api/auth/facilityuser/ (None: nothing)."""

    def __init__(self, users: int = 5, per_page: int = 2) -> None:
        self.users, self.per_page = users, per_page
        self.fault: str | None = None
        self.requests = 0
        self.created: list[dict[str, Any]] = []
        self.runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> MisbehavingKolibri:
        """Listen on a free loopback port."""
        app = web.Application()
        app.router.add_get("/api/public/info/", self.info)
        app.router.add_post("/api/auth/session/", self.sign_in)
        app.router.add_put("/api/auth/session/current/", self.current)
        app.router.add_get("/api/auth/facilityuser/", self.facility_users)
        app.router.add_get("/api/auth/deletedfacilityuser/", self.deleted_users)
        app.router.add_post("/api/tasks/tasks/", self.start_task)
        app.router.add_get("/api/tasks/tasks/{id}/", self.task)
        app.router.add_post("/api/tasks/tasks/{id}/clear/", self.clear_task)
        app.router.add_get("/facility/api/downloadcsvfile/summary/{facility}/", self.download)
        app.router.add_post("/api/auth/facilityuser/", self.create_user)
        app.router.add_get("/api/auth/classroom/", self.classrooms)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        """Stop listening."""
        if self.runner is not None:
            await self.runner.cleanup()

    async def start_task(self, request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"id": "1" * 32, "status": "QUEUED", "type": body["type"]})

    async def task(self, request: web.Request) -> web.Response:
        return web.json_response({"id": request.match_info["id"], "status": "COMPLETED"})

    async def clear_task(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def download(self, request: web.Request) -> web.Response:
        header = ("Facility name,Username,User type,Channel id,Channel name,Content id,Content title,Time of first"
                  " interaction,Time of last interaction,Time of completion,Time Spent (sec),Progress (0-1),"
                  "Content kind\r\n")
        row = (f"Unit A,user_1,Learner,{'b' * 32},,{'a' * 32},,2026-12-06 22:42:10+00:00,2026-12-06"
               " 23:42:10+00:00,,{spent},0.5000,video\r\n")
        body = header + row.format(spent="lots" if self.fault == "bad_csv" else "30.0")
        return web.Response(body=("\ufeff" + body).encode(), content_type="text/csv")

    async def deleted_users(self, request: web.Request) -> web.Response:
        return web.json_response({"page": 1, "count": 0, "total_pages": 1, "results": []})

    async def create_user(self, request: web.Request) -> web.Response:
        body = await request.json()
        if request.headers.get("X-CSRFToken") != "csrf-1":
            return web.json_response([{"id": "PERMISSION_DENIED", "metadata": {}}], status=403)
        if self.fault == "html_push":
            return web.Response(text="<html><body>Proxy says hello</body></html>", content_type="text/html")
        self.created.append(body)
        return web.json_response({**user(1000 + len(self.created)), "username": body["username"],
                                  "id_number": body["id_number"]}, status=201)

    async def classrooms(self, request: web.Request) -> web.Response:
        return web.json_response([])

    async def info(self, request: web.Request) -> web.Response:
        return web.json_response({"application": "kolibri", "kolibri_version": "0.19.5"})

    async def sign_in(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("password") != "good":
            return web.json_response([{"id": "INVALID_CREDENTIALS", "metadata": {}}], status=401)
        resp = web.json_response({"id": "current", "username": body["username"], "user_id": ADMIN_ID,
                                  "kind": ["superuser", "admin"], "facility_id": FACILITY})
        resp.set_cookie("kolibri", "session-1", httponly=True)
        resp.set_cookie("kolibri_csrftoken", "csrf-1")
        return resp

    async def current(self, request: web.Request) -> web.Response:
        signed = request.cookies.get("kolibri") == "session-1"
        return web.json_response({"id": "current", "user_id": ADMIN_ID if signed else None,
                                  "kind": ["superuser", "admin"] if signed else ["anonymous"],
                                  "facility_id": FACILITY})

    async def facility_users(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        page = int(request.query.get("page", "1"))
        size = int(request.query.get("page_size", str(self.per_page)))
        everyone = [user(i) for i in range(1, self.users + 1)]
        if "search" in request.query:
            everyone = [u for u in everyone if request.query["search"].lower() in u["username"]]
        items = everyone[(page - 1) * size : page * size]
        total = max(1, -(-len(everyone) // size))
        fault = self.fault
        if fault == "missing_field":
            del items[0]["username"]
        elif fault == "wrong_type":
            items[0]["id"] = 12345
        elif fault == "duplicate" and page == 2:
            items[0] = user(1)
        elif fault == "never_ends":
            total = 10**9
        elif fault == "html":
            return web.Response(text="<html><body><h1>Welcome to the captive portal</h1></body></html>",
                                content_type="text/html")
        elif fault == "huge":
            return web.Response(body=b'{"results": [' + b" " * (10 * 1024 * 1024) + b"]}",
                                content_type="application/json")
        elif fault == "huge_chunked":
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            await resp.prepare(request)
            await resp.write(b'{"page": 1, "results": [')
            for _ in range(160):
                await resp.write(b" " * 65536)
            await resp.write(b"]}")
            return resp
        return web.json_response({"page": page, "count": len(everyone), "total_pages": total, "results": items})
