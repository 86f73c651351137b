"""Holes found by the LAN review: the forced password change, tokens on reset, higher accounts' sessions
and tokens, what a 409 reveals, and deeply nested JSON."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
from aiohttp.test_utils import TestClient

from tests.auth.helpers import Browser
from tests.auth.test_users import signed_in
from tests.conftest import MakeFacility, MakeUser

Browsers = Callable[[TestClient], Browser]
HTML = {"Accept": "text/html,application/xhtml+xml"}


async def _must_change(client: TestClient, make_user: MakeUser, browsers: Browsers) -> tuple[Browser, Browser, int]:
    """(admin, learner signed in with a temporary password, learner id)."""
    admin = await signed_in(client, make_user, browsers, role="facility_admin")
    learner = await make_user(client)
    temp = (await admin.call("POST", f"/api/v1/users/{learner['id']}/reset-password"))["data"]["temporary_password"]
    b = browsers(client)
    await b.login(learner["username"], temp)
    return admin, b, learner["id"]


async def test_forced_password_change_gates_pages_content_and_streams(
    client: TestClient, make_user: MakeUser, browsers: Browsers
) -> None:
    _admin, learner, _ = await _must_change(client, make_user, browsers)
    for path in ("/", "/library", "/videos", "/admin", "/library/read/testbook/"):
        async with learner.http.get(learner.base + path, headers=HTML, allow_redirects=False) as resp:
            assert resp.status == 303, path
            assert resp.headers["Location"] == "/account/password"
    for path in ("/content/testbook/", "/videos/1/stream", "/videos/1/thumbnail", "/api/v1/videos/events",
                 "/api/v1/libraries", "/random"):
        async with learner.http.get(learner.base + path, allow_redirects=False) as resp:
            assert resp.status == 403, path
            assert (await resp.json())["error"]["code"] == "password_change_required"
    # what the change itself needs still works
    for path in ("/account/password", "/static/ui/ui.css", "/api/v1/auth/me"):
        async with learner.http.get(learner.base + path, headers=HTML) as resp:
            assert resp.status == 200, path
    # and the page's own sign-out form (a POST with the session's CSRF field) is not refused by the gate
    async with learner.http.post(learner.base + "/logout", data={"csrf_token": "x"}, headers=HTML,
                                 allow_redirects=False) as resp:
        assert resp.status != 403 or "password_change_required" not in await resp.text(), resp.status
    await learner.call("POST", "/api/v1/auth/logout")


async def test_reset_revokes_tokens_and_tokens_do_not_skip_the_change(
    client: TestClient, make_user: MakeUser, browsers: Browsers
) -> None:
    admin = await signed_in(client, make_user, browsers, role="facility_admin")
    learner = await make_user(client)
    made = await admin.call("POST", "/api/v1/tokens", expect=201,
                            json={"name": "script", "role": "learner", "user_id": learner["id"]})
    bearer = {"Authorization": f"Bearer {made['data']['token']}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(admin.base + "/api/v1/auth/me", headers=bearer) as resp:
            assert resp.status == 200
        await admin.call("POST", f"/api/v1/users/{learner['id']}/reset-password")
        async with http.get(admin.base + "/api/v1/auth/me", headers=bearer) as resp:
            assert resp.status == 401  # the reset revoked it
        # a token made while the temporary password is pending does not skip the change either
        made = await admin.call("POST", "/api/v1/tokens", expect=201,
                                json={"name": "again", "role": "learner", "user_id": learner["id"]})
        bearer = {"Authorization": f"Bearer {made['data']['token']}"}
        async with http.get(admin.base + "/api/v1/libraries", headers=bearer) as resp:
            assert resp.status == 403
            assert (await resp.json())["error"]["code"] == "password_change_required"


async def test_facility_admin_cannot_see_a_system_admins_sessions_or_tokens(
    client: TestClient, make_user: MakeUser, browsers: Browsers
) -> None:
    root = await signed_in(client, make_user, browsers, role="system_admin")  # homed in facility 1
    root_id = root.user["id"]  # type: ignore[attr-defined]
    await root.call("POST", "/api/v1/tokens", expect=201, json={"name": "root-script", "role": "system_admin"})
    fa = await signed_in(client, make_user, browsers, role="facility_admin")
    await fa.call("GET", f"/api/v1/users/{root_id}/sessions", expect=404)
    tokens = (await fa.call("GET", "/api/v1/tokens"))["data"]
    assert all(t["user_id"] != root_id for t in tokens)
    # its own and its learners' stay visible; the system admin still sees everything
    learner = await signed_in(client, make_user, browsers)
    lid = learner.user["id"]  # type: ignore[attr-defined]
    assert len((await fa.call("GET", f"/api/v1/users/{lid}/sessions"))["data"]) == 1
    await fa.call("POST", "/api/v1/tokens", expect=201, json={"name": "mine", "role": "facility_admin"})
    assert {t["name"] for t in (await fa.call("GET", "/api/v1/tokens"))["data"]} == {"mine"}
    assert {"root-script", "mine"} <= {t["name"] for t in (await root.call("GET", "/api/v1/tokens"))["data"]}


async def test_username_conflicts_say_the_same_whichever_facility_holds_the_name(
    client: TestClient, make_user: MakeUser, make_facility: MakeFacility, browsers: Browsers
) -> None:
    other = await make_facility(client)
    await make_user(client, username="elsewhere", facility_id=other)
    await make_user(client, username="righthere", facility_id=1)
    fa = await signed_in(client, make_user, browsers, role="facility_admin")
    answers = []
    for name in ("elsewhere", "righthere"):
        body = await fa.call("POST", "/api/v1/users", expect=409, json={"username": name, "role": "learner"})
        answers.append(body["error"])
    assert answers[0] == answers[1]
    assert answers[0]["code"] == "username_taken"
    assert str(other) not in str(answers[0])


async def test_deeply_nested_json_is_a_400(client: TestClient) -> None:
    for body in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000, b"[" * 100_000):
        for path in ("/api/v1/auth/login", "/api/v1/users"):
            resp = await client.post(path, data=body, headers={"Content-Type": "application/json"})
            assert resp.status in (400, 401), path  # /users needs a session first: never a 500
            if resp.status == 400:
                assert (await resp.json())["error"]["code"] == "invalid_json"
    resp = await client.post("/api/v1/auth/login", data=b"[" * 100_000 + b"]" * 100_000,
                             headers={"Content-Type": "application/json"})
    assert resp.status == 400
