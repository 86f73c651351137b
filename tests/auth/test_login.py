"""Sign-in, sessions, sign-out, lockout and password change through the full app."""

import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

from aiohttp.test_utils import TestClient

from appliance.auth import passwords
from appliance.core.clock import FakeClock
from appliance.keys import DB
from tests.auth.helpers import Browser
from tests.conftest import AppClientFactory, MakeUser

Browsers = Callable[[TestClient], Browser]


async def test_login_me_logout(client: TestClient, make_user: MakeUser, browsers: Browsers) -> None:
    user = await make_user(client, role="learner")
    b = browsers(client)
    body = await b.login(user["username"], user["password"])
    assert body["data"]["user"]["username"] == user["username"]
    assert "password_hash" not in json.dumps(body)
    me = await b.call("GET", "/api/v1/auth/me")
    assert me["data"]["role"] == "learner"
    assert me["data"]["csrf_token"] == b.csrf
    stored = await client.app[DB].fetchval("SELECT token_hash FROM sessions")
    assert stored != b.session_cookie()
    assert len(stored) == 64
    await b.call("POST", "/api/v1/auth/logout")
    await b.call("GET", "/api/v1/auth/me", expect=401)
    actions = [r["action"] for r in await client.app[DB].fetchall("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["sign_in_succeeded", "signed_out"]


async def test_cookie_flags(
    app_client: AppClientFactory,
    config_factory,
    make_user: MakeUser,  # type: ignore[no-untyped-def]
    browsers: Browsers,
) -> None:
    client = await app_client(config_factory(http={"secure_cookies": True}))
    user = await make_user(client)
    async with client.post(
        "/api/v1/auth/login", json={"username": user["username"], "password": user["password"]}
    ) as resp:
        cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" in cookie
    plain = await app_client(config_factory())
    user2 = await make_user(plain)
    async with plain.post(
        "/api/v1/auth/login", json={"username": user2["username"], "password": user2["password"]}
    ) as resp:
        assert "Secure" not in resp.headers["Set-Cookie"]  # auto, and this test server speaks plain HTTP


async def test_new_session_id_at_sign_in(client: TestClient, make_user: MakeUser, browsers: Browsers) -> None:
    user = await make_user(client)
    b = browsers(client)
    await b.login(user["username"], user["password"])
    first = b.session_cookie()
    await b.login(user["username"], user["password"])
    assert b.session_cookie() != first
    states = [r["state"] for r in await client.app[DB].fetchall("SELECT state FROM sessions ORDER BY id")]
    assert states == ["rotated", "active"]
    thief = browsers(client)
    thief.http.cookie_jar.update_cookies({"appliance_session": first})
    await thief.call("GET", "/api/v1/auth/me", expect=401)


async def test_unknown_user_and_wrong_password_look_the_same(
    app_client: AppClientFactory,  # type: ignore[no-untyped-def]
    config_factory,
    make_user: MakeUser,
) -> None:
    client = await app_client(
        config_factory(auth={"lockout_threshold": 1000, "lockout_address_threshold": 1000, "login_user_burst": 1000})
    )
    user = await make_user(client)
    bodies, wrong, unknown = set(), [], []
    for i in range(7):
        for name, sink in ((user["username"], wrong), (f"ghost{i}", unknown)):
            start = time.perf_counter()
            async with client.post("/api/v1/auth/login", json={"username": name, "password": "nope-nope-1"}) as r:
                sink.append(time.perf_counter() - start)
                assert r.status == 401
                body = await r.json()
                bodies.add(json.dumps(body["error"], sort_keys=True))
    assert len(bodies) == 1
    # Without the dummy verification an unknown user answers in ~1 ms instead of ~30 ms.
    ratio = statistics.median(unknown) / statistics.median(wrong)
    assert 0.5 < ratio < 2.0, (unknown, wrong)


async def test_lockout_per_username_then_expires(
    app_client: AppClientFactory,
    config_factory,  # type: ignore[no-untyped-def]
    make_user: MakeUser,
    browsers: Browsers,
) -> None:
    clock = FakeClock(datetime(2026, 11, 26, 8, 0, tzinfo=UTC))
    client = await app_client(config_factory(), clock=clock)
    user = await make_user(client)
    b = browsers(client)
    for _ in range(5):
        await b.login(user["username"], "wrong-pass-1", expect=401)
    body = await b.login(user["username"], user["password"], expect=429)
    assert body["error"]["code"] == "account_locked"
    assert int(b.last_headers["Retry-After"]) > 800
    ghost = browsers(client)  # an unknown name locks the same way: no enumeration through lockout
    for _ in range(5):
        await ghost.login("nobody-here", "wrong-pass-1", expect=401)
    assert (await ghost.login("nobody-here", "wrong-pass-1", expect=429))["error"]["code"] == "account_locked"
    clock.advance(15 * 60 + 1)
    await b.login(user["username"], user["password"])
    rows = await client.app[DB].fetchall("SELECT action FROM audit_log WHERE action = 'account_locked'")
    assert len(rows) == 2


async def test_lockout_per_address(
    app_client: AppClientFactory,
    config_factory,
    make_user: MakeUser,  # type: ignore[no-untyped-def]
    browsers: Browsers,
) -> None:
    client = await app_client(config_factory(auth={"lockout_address_threshold": 3}))
    user = await make_user(client)
    b = browsers(client)
    for i in range(3):
        await b.login(f"someone{i}", "wrong-pass-1", expect=401)
    assert (await b.login(user["username"], user["password"], expect=429))["error"]["code"] == "account_locked"


async def test_idle_and_absolute_expiry(
    app_client: AppClientFactory,
    config_factory,
    make_user: MakeUser,  # type: ignore[no-untyped-def]
    browsers: Browsers,
) -> None:
    clock = FakeClock(datetime(2026, 11, 26, 8, 0, tzinfo=UTC))
    client = await app_client(
        config_factory(auth={"session_idle_minutes": 30, "session_absolute_hours": 1}), clock=clock
    )
    user = await make_user(client)
    b = browsers(client)
    await b.login(user["username"], user["password"])
    for _ in range(2):  # active every 25 minutes: idle never reached, but the absolute limit is
        clock.advance(25 * 60)
        await b.call("GET", "/api/v1/auth/me")
    clock.advance(11 * 60)
    await b.call("GET", "/api/v1/auth/me", expect=401)
    await b.login(user["username"], user["password"])
    clock.advance(31 * 60)
    await b.call("GET", "/api/v1/auth/me", expect=401)
    states = [r["state"] for r in await client.app[DB].fetchall("SELECT state FROM sessions ORDER BY id")]
    assert states == ["expired", "expired"]


async def test_rehash_on_login_when_parameters_change(
    client: TestClient, make_user: MakeUser, browsers: Browsers
) -> None:
    user = await make_user(client)
    db = client.app[DB]
    old = await db.fetchval("SELECT password_hash FROM users WHERE id = ?", (user["id"],))
    try:
        passwords.configure(time_cost=3)
        await browsers(client).login(user["username"], user["password"])
        new = await db.fetchval("SELECT password_hash FROM users WHERE id = ?", (user["id"],))
        assert new != old
        assert "t=3" in new
    finally:
        passwords.configure()


async def test_change_password_rotates_and_ends_other_sessions(
    client: TestClient, make_user: MakeUser, browsers: Browsers
) -> None:
    user = await make_user(client)
    a, other = browsers(client), browsers(client)
    await a.login(user["username"], user["password"])
    await other.login(user["username"], user["password"])
    before = a.session_cookie()
    await a.call(
        "POST", "/api/v1/auth/password", json={"current_password": "bad-guess-1", "new_password": "x"}, expect=400
    )
    body = await a.call(
        "POST",
        "/api/v1/auth/password",
        expect=403,
        json={"current_password": "bad-guess-1", "new_password": "brand new 77"},
    )
    assert body["error"]["code"] == "wrong_password"
    body = await a.call(
        "POST", "/api/v1/auth/password", json={"current_password": user["password"], "new_password": "brand new 77"}
    )
    a.csrf = body["data"]["csrf_token"]
    assert a.session_cookie() != before
    await a.call("GET", "/api/v1/auth/me")
    await other.call("GET", "/api/v1/auth/me", expect=401)
    await browsers(client).login(user["username"], user["password"], expect=401)
    await browsers(client).login(user["username"], "brand new 77")


async def test_housekeeping_expires_and_forgets_sessions(
    app_client: AppClientFactory,
    config_factory,
    make_user: MakeUser,
    browsers: Browsers,  # type: ignore[no-untyped-def]
) -> None:
    from appliance.auth.feature import housekeeping_once

    clock = FakeClock(datetime(2026, 11, 26, 8, 0, tzinfo=UTC))
    client = await app_client(config_factory(), clock=clock)
    user = await make_user(client)
    await browsers(client).login(user["username"], user["password"])
    db = client.app[DB]
    clock.advance(31 * 60)
    await housekeeping_once(client.app)
    assert await db.fetchval("SELECT state FROM sessions") == "expired"
    clock.advance(29 * 86400)
    await housekeeping_once(client.app)
    assert await db.fetchval("SELECT count(*) FROM sessions") == 1
    clock.advance(2 * 86400)
    await housekeeping_once(client.app)
    assert await db.fetchval("SELECT count(*) FROM sessions") == 0
