"""Token buckets: pure behaviour with an injected clock, and 429s with Retry-After through the app."""

from datetime import UTC, datetime

from aiohttp.test_utils import TestClient

from appliance.auth.ratelimit import Limiter
from appliance.core.clock import FakeClock
from tests.conftest import AppClientFactory, MakeUser


def test_bucket_allows_burst_then_refills() -> None:
    limiter = Limiter(per_minute=60, burst=3)
    assert [limiter.check("a", 0.0) for _ in range(4)] == [0, 0, 0, 1]
    assert limiter.check("b", 0.0) == 0  # another key has its own bucket
    assert limiter.check("a", 1.0) == 0  # one token per second came back
    assert limiter.check("a", 1.0) == 1


def test_limiter_memory_is_bounded() -> None:
    limiter = Limiter(per_minute=60, burst=1, max_keys=100)
    for i in range(1000):
        limiter.check(f"k{i}", 0.0)
    assert len(limiter) == 100


async def test_api_and_login_limits_answer_429(
    app_client: AppClientFactory,
    config_factory,  # type: ignore[no-untyped-def]
    make_user: MakeUser,
) -> None:
    clock = FakeClock(datetime(2026, 11, 26, 8, 0, tzinfo=UTC))
    client: TestClient = await app_client(
        config_factory(
            auth={
                "api_address_burst": 5,
                "api_address_rate_per_minute": 60,
                "login_burst": 3,
                "login_rate_per_minute": 3,
                "login_user_burst": 100,
                "lockout_address_threshold": 100,
            }
        ),
        clock=clock,
    )
    user = await make_user(client)
    statuses = []
    for _ in range(4):
        async with client.post("/api/v1/auth/login", json={"username": user["username"], "password": "x-wrong-1"}) as r:
            statuses.append(r.status)
            if r.status == 429:
                assert r.headers["Retry-After"] == "20"
                assert (await r.json())["error"]["code"] == "rate_limited"
    assert statuses == [401, 401, 401, 429]
    for expected in [401] * 5 + [429]:
        async with client.get("/api/v1/users") as r:
            assert r.status == expected
    clock.advance(2)
    async with client.get("/api/v1/users") as r:
        assert r.status == 401  # refilled: two tokens back after two seconds
    async with client.get("/healthz") as r:
        assert r.status != 429  # only the API is limited


async def test_per_user_bucket_is_separate_from_the_address(
    app_client: AppClientFactory,
    config_factory,  # type: ignore[no-untyped-def]
    make_user: MakeUser,
    browsers,  # type: ignore[no-untyped-def]
) -> None:
    clock = FakeClock(datetime(2026, 11, 26, 8, 0, tzinfo=UTC))
    client: TestClient = await app_client(config_factory(auth={"api_burst": 3, "api_rate_per_minute": 6}), clock=clock)
    busy, calm = await make_user(client), await make_user(client)
    a, b = browsers(client), browsers(client)
    await a.login(busy["username"], busy["password"])
    await b.login(calm["username"], calm["password"])
    for _ in range(3):
        await a.call("GET", "/api/v1/auth/me")
    body = await a.call("GET", "/api/v1/auth/me", expect=429)
    assert body["error"]["code"] == "rate_limited"
    assert a.last_headers["Retry-After"] == "10"
    await b.call("GET", "/api/v1/auth/me")  # same address, other user: still served
