"""Hostile and malformed input: a clear 4xx with the JSON envelope, and nothing changed."""

from collections.abc import Callable

import pytest
from aiohttp.test_utils import TestClient

from appliance.keys import DB
from tests.auth.helpers import Browser
from tests.conftest import MakeUser

Browsers = Callable[[TestClient], Browser]
METACHAR_NAMES = ["*)(uid=*))(|(uid=*", "admin'--", 'a"; DROP TABLE users;--', "x\x00y", "a b", "(cn=*)"]


async def _counts(client: TestClient) -> tuple[int, ...]:
    db = client.app[DB]
    tables = ("users", "sessions", "audit_log", "login_failures", "lockouts", "outbox", "api_tokens")
    return tuple([int(await db.fetchval(f"SELECT count(*) FROM {t}")) for t in tables])  # noqa: S608


@pytest.mark.parametrize("name", METACHAR_NAMES)
async def test_login_with_metacharacter_username(client: TestClient, make_user: MakeUser, name: str) -> None:
    await make_user(client, username="alice")
    before = await _counts(client)
    async with client.post("/api/v1/auth/login", json={"username": name, "password": "whatever-1"}) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == "invalid_username"
    assert await _counts(client) == before


async def test_create_user_with_bad_names_refused(client: TestClient, make_user: MakeUser, browsers: Browsers) -> None:
    admin = await make_user(client, role="system_admin")
    b = browsers(client)
    await b.login(admin["username"], admin["password"])
    before = await _counts(client)
    for name in [*METACHAR_NAMES, "аdmin", "x" * 65, ""]:  # "аdmin" starts with a Cyrillic а
        body = await b.call("POST", "/api/v1/users", json={"username": name, "role": "learner"}, expect=400)
        assert body["error"]["details"]["field"] == "username"
    assert await _counts(client) == before


async def test_unicode_lookalike_fullwidth_is_the_same_account(
    client: TestClient, make_user: MakeUser, browsers: Browsers
) -> None:
    user = await make_user(client, username="alice")
    await browsers(client).login("ＡＬＩＣＥ", user["password"])  # NFKC + casefold → alice
    admin = await make_user(client, role="system_admin")
    b = browsers(client)
    await b.login(admin["username"], admin["password"])
    body = await b.call("POST", "/api/v1/users", json={"username": "Ａlice", "role": "learner"}, expect=409)
    assert body["error"]["code"] == "username_taken"


@pytest.mark.parametrize(
    ("password", "code"),
    [("p" * 10_000, "password_too_long"), ("abc\x00def123", "invalid_password"), ("", "invalid_password")],
)
async def test_unusable_passwords(client: TestClient, make_user: MakeUser, password: str, code: str) -> None:
    user = await make_user(client)
    before = await _counts(client)
    async with client.post("/api/v1/auth/login", json={"username": user["username"], "password": password}) as r:
        assert r.status == 400
        assert (await r.json())["error"]["code"] == code
    assert await _counts(client) == before


async def test_lone_surrogate_password_is_refused(client: TestClient, make_user: MakeUser) -> None:
    user = await make_user(client)
    raw = '{"username": "' + user["username"] + '", "password": "ab\\ud800cdefgh1"}'
    async with client.post("/api/v1/auth/login", data=raw, headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400


@pytest.mark.parametrize("body", [b"\xff\xfe{not utf8", b'{"username": "a\xc3"}', b"[1,2]", b"null", b"{"])
async def test_invalid_bodies(client: TestClient, body: bytes) -> None:
    before = await _counts(client)
    async with client.post("/api/v1/auth/login", data=body, headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400
        assert (await r.json())["error"]["code"] in ("invalid_json", "invalid_body")
    assert await _counts(client) == before


async def test_wrong_types(client: TestClient) -> None:
    for body in [{"username": 1, "password": "x"}, {"username": "a", "password": ["x"]}, {}]:
        async with client.post("/api/v1/auth/login", json=body) as r:
            assert r.status == 400


async def test_cookie_of_deactivated_user_is_refused(
    client: TestClient, make_user: MakeUser, browsers: Browsers
) -> None:
    user = await make_user(client)
    b = browsers(client)
    await b.login(user["username"], user["password"])
    # Deactivated behind the API's back: the session check itself must notice.
    await client.app[DB].execute(
        "UPDATE users SET deactivated_at = '2026-01-01T00:00:00.000Z' WHERE id = ?", (user["id"],)
    )
    body = await b.call("GET", "/api/v1/auth/me", expect=401)
    assert body["error"]["code"] == "unauthorized"
    assert await client.app[DB].fetchval("SELECT state FROM sessions") == "deactivated"
    await b.login(user["username"], user["password"], expect=401)


async def test_form_posts_without_csrf_are_refused(client: TestClient, make_user: MakeUser, browsers: Browsers) -> None:
    user = await make_user(client)
    before = await _counts(client)
    # A cross-site <form> posting credentials (login CSRF).
    async with client.post(
        "/api/v1/auth/login", data={"username": user["username"], "password": user["password"]}
    ) as r:
        assert r.status == 403
        assert (await r.json())["error"]["code"] == "csrf_failed"
    assert await _counts(client) == before
    b = browsers(client)
    await b.login(user["username"], user["password"])
    await b.call("POST", "/api/v1/auth/logout", csrf=False, expect=403)
    await b.call("POST", "/api/v1/auth/logout", headers={"X-CSRF-Token": "forged"}, expect=403)
    await b.call("POST", "/api/v1/auth/logout", csrf=False, data={"x": "1"}, expect=403)
    await b.call("POST", "/api/v1/auth/logout", headers={"Origin": "http://evil.example"}, expect=403)
    await b.call("GET", "/api/v1/auth/me")  # still signed in: none of the above did anything
    await b.call("POST", "/api/v1/auth/logout", data={"csrf_token": b.csrf}, csrf=False)  # form field works
    await b.call("GET", "/api/v1/auth/me", expect=401)


async def test_tampered_cookie_and_token(client: TestClient, make_user: MakeUser, browsers: Browsers) -> None:
    admin = await make_user(client, role="system_admin")
    b = browsers(client)
    await b.login(admin["username"], admin["password"])
    token = (await b.call("POST", "/api/v1/tokens", json={"name": "ci", "role": "system_admin"}, expect=201))["data"][
        "token"
    ]
    async with client.get("/api/v1/users", headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 200
    for bad in [token[:-1] + ("A" if token[-1] != "A" else "B"), token + "x", "apt_", "apt_" + "x" * 500]:
        async with client.get("/api/v1/users", headers={"Authorization": f"Bearer {bad}"}) as r:
            assert r.status == 401
            assert (await r.json())["error"]["code"] == "invalid_token"
    cookie = b.session_cookie()
    forged = browsers(client)
    forged.http.cookie_jar.update_cookies({"appliance_session": cookie[:-2] + "zz"})
    await forged.call("GET", "/api/v1/auth/me", expect=401)
    forged.http.cookie_jar.update_cookies({"appliance_session": "x" * 5000})
    await forged.call("GET", "/api/v1/auth/me", expect=401)


async def test_out_of_range_ids_are_400_not_500(client: TestClient, make_user: MakeUser, browsers: Browsers) -> None:
    admin = await make_user(client, role="system_admin")
    learner = await make_user(client)
    b = browsers(client)
    await b.login(admin["username"], admin["password"])
    before = await _counts(client)
    huge = 2**70
    await b.call("POST", "/api/v1/users", json={"username": "n1", "role": "learner", "facility_id": huge}, expect=400)
    await b.call("PATCH", f"/api/v1/users/{learner['id']}", json={"facility_id": -1}, expect=400)
    await b.call("PATCH", f"/api/v1/users/{learner['id']}", json={"extra_facility_ids": [huge]}, expect=400)
    await b.call("PATCH", f"/api/v1/users/{learner['id']}", json={"facility_id": True}, expect=400)
    await b.call("POST", "/api/v1/tokens", json={"name": "t", "user_id": huge}, expect=400)
    await b.call("GET", f"/api/v1/users/{'9' * 30}", expect=404)
    await b.call("GET", "/api/v1/audit?facility_id=" + "9" * 30, expect=400)
    assert await _counts(client) == before
