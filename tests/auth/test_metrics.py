"""Identity metrics: sign-ins by result, lockouts, rate-limit rejections, the active-sessions gauge."""

from collections.abc import Callable

from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY

from appliance.auth.feature import housekeeping_once
from appliance.keys import DB
from tests.auth.helpers import Browser
from tests.conftest import AppClientFactory, MakeUser

Browsers = Callable[[TestClient], Browser]


def sample(name: str, **labels: str) -> float:
    """The current value of a metric sample in the default registry (0 when absent)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_sign_in_lockout_and_session_metrics(
    app_client: AppClientFactory,
    config_factory,  # type: ignore[no-untyped-def]
    make_user: MakeUser,
    browsers: Browsers,
) -> None:
    client = await app_client(config_factory(auth={"lockout_threshold": 2, "login_user_burst": 4}))
    user = await make_user(client)
    ok0 = sample("appliance_auth_sign_ins_total", method="password", result="success")
    bad0 = sample("appliance_auth_sign_ins_total", method="password", result="failure")
    lock0 = sample("appliance_auth_lockouts_total", kind="username")
    limited0 = sample("appliance_auth_rate_limited_total", bucket="login_user")
    b = browsers(client)
    await b.login(user["username"], user["password"])
    await housekeeping_once(client.app)
    assert sample("appliance_auth_sessions_active") == 1
    other = browsers(client)
    await other.login(user["username"], "wrong-pass-1", expect=401)
    await other.login(user["username"], "wrong-pass-1", expect=401)
    locked = await other.login(user["username"], user["password"], expect=429)
    assert locked["error"]["code"] == "account_locked"
    limited = await other.login(user["username"], user["password"], expect=429)  # bucket of 4 spent
    assert limited["error"]["code"] == "rate_limited"
    assert sample("appliance_auth_sign_ins_total", method="password", result="success") == ok0 + 1
    assert sample("appliance_auth_sign_ins_total", method="password", result="failure") == bad0 + 2
    assert sample("appliance_auth_lockouts_total", kind="username") == lock0 + 1
    assert sample("appliance_auth_rate_limited_total", bucket="login_user") == limited0 + 1
    await b.call("POST", "/api/v1/auth/logout")
    await housekeeping_once(client.app)
    assert sample("appliance_auth_sessions_active") == 0


async def test_secure_cookie_and_address_behind_trusted_proxy(
    app_client: AppClientFactory,
    config_factory,  # type: ignore[no-untyped-def]
    make_user: MakeUser,
) -> None:
    proxied = await app_client(config_factory(http={"trusted_proxies": ["127.0.0.0/8"]}))
    user = await make_user(proxied)
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "10.9.8.7"}
    body = {"username": user["username"], "password": user["password"]}
    async with proxied.post("/api/v1/auth/login", json=body, headers=headers) as resp:
        assert "Secure" in resp.headers["Set-Cookie"]
    async with proxied.get(f"/api/v1/users/{user['id']}/sessions") as resp:
        assert resp.status == 401
    assert await proxied.app[DB].fetchval("SELECT client_addr FROM sessions") == "10.9.8.7"
    direct = await app_client(config_factory())  # no trusted proxy: the headers are ignored
    user2 = await make_user(direct)
    async with direct.post(
        "/api/v1/auth/login", json={"username": user2["username"], "password": user2["password"]}, headers=headers
    ) as resp:
        assert "Secure" not in resp.headers["Set-Cookie"]
    newest = "SELECT client_addr FROM sessions ORDER BY id DESC LIMIT 1"
    assert await direct.app[DB].fetchval(newest) == "127.0.0.1"
