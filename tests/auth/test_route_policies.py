"""Every route of the full app declares a policy, and the policy holds for each kind of caller."""

import re
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from appliance.app import create_app
from appliance.auth.opaque import hash_secret, new_api_token
from appliance.keys import DB
from appliance.web.policy import Access, Policy, Role, policy_of
from tests.conftest import AppClientFactory, MakeFacility, MakeUser

# The six callers of the issue: (name, role or None for anonymous, facility: "home" or "other").
CALLERS = [
    ("anonymous", None, "home"),
    ("learner", Role.LEARNER, "home"),
    ("facility_admin_elsewhere", Role.FACILITY_ADMIN, "other"),
    ("facility_admin", Role.FACILITY_ADMIN, "home"),
    ("department_admin", Role.DEPARTMENT_ADMIN, "home"),
    ("system_admin", Role.SYSTEM_ADMIN, "home"),
]


def undeclared_routes(app: web.Application) -> list[str]:
    """Routes (other than static folders) whose handler declares no policy."""
    return [
        f"{r.method} {r.resource.canonical}"
        for r in app.router.routes()
        if r.resource is not None and not isinstance(r.resource, web.StaticResource) and policy_of(r.handler) is None
    ]


def allowed(policy: Policy, role: Role | None) -> bool:
    """What the policy promises for a caller of this role (None = anonymous)."""
    if policy.access is Access.PUBLIC:
        return True
    if role is None:
        return False
    return policy.access is Access.SIGNED_IN or role in policy.roles


def concrete_path(resource: web.AbstractResource) -> str:
    """The template with every {param} filled; ids name nothing, so no handler changes real data."""
    return re.sub(r"\{([^}:]+)(:[^}]*)?\}", lambda m: "999999" if "id" in m.group(1) else "x", resource.canonical)


async def test_every_route_declares_a_policy(client: TestClient) -> None:
    routes = [r for r in client.app.router.routes() if not isinstance(r.resource, web.StaticResource)]
    assert len(routes) > 50  # the full app, every feature's routes
    assert undeclared_routes(client.app) == []


async def test_an_undeclared_route_is_caught_and_denied(
    app_client: AppClientFactory,
    config_factory,  # type: ignore[no-untyped-def]
    make_user: MakeUser,
) -> None:
    async def sneaky(request: web.Request) -> web.Response:
        return web.json_response({"data": "leaked"})

    app = create_app(config_factory())
    app.router.add_get("/api/v1/sneaky", sneaky)
    assert sorted(undeclared_routes(app)) == ["GET /api/v1/sneaky", "HEAD /api/v1/sneaky"]
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        admin = await make_user(client, role="system_admin")
        token = await _token(client, admin["id"], Role.SYSTEM_ADMIN)
        async with client.get("/api/v1/sneaky", headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 403
            assert "leaked" not in await resp.text()
    finally:
        await client.close()


async def _token(client: TestClient, user_id: int, role: Role) -> str:
    token, prefix = new_api_token()
    await client.app[DB].execute(
        "INSERT INTO api_tokens (token_hash, prefix, name, user_id, role) VALUES (?, ?, 'policy test', ?, ?)",
        (hash_secret(token), prefix, user_id, role.value),
    )
    return token


@pytest.mark.slow
async def test_policy_matrix_for_every_route(
    config_factory,
    make_user: MakeUser,  # type: ignore[no-untyped-def]
    make_facility: MakeFacility,
) -> None:
    reached: list[str] = []

    @web.middleware
    async def probe(request: web.Request, handler: Any) -> web.StreamResponse:
        # Innermost (after the policy middleware): being called means the policy let the caller through.
        reached.append(request.path)
        return await handler(request)

    app = create_app(config_factory(auth={"api_burst": 100_000, "api_address_burst": 100_000}))
    app.middlewares.append(probe)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        failures = await _run_matrix(client, make_user, make_facility, reached)
    finally:
        await client.close()
    assert not failures, "\n".join(failures)


async def _run_matrix(
    client: TestClient, make_user: MakeUser, make_facility: MakeFacility, reached: list[str]
) -> list[str]:
    other = await make_facility(client, "Elsewhere")
    tokens: dict[str, str | None] = {}
    for name, role, where in CALLERS:
        if role is None:
            tokens[name] = None
            continue
        user = await make_user(client, role=role.value, facility_id=other if where == "other" else 1)
        tokens[name] = await _token(client, user["id"], role)
    failures: list[str] = []
    checked = 0
    timeout = aiohttp.ClientTimeout(total=10)
    for route in client.app.router.routes():
        if isinstance(route.resource, web.StaticResource) or route.resource is None:
            continue
        policy = policy_of(route.handler)
        assert policy is not None
        path = concrete_path(route.resource)
        for name, role, _ in CALLERS:
            headers = {"Authorization": f"Bearer {tokens[name]}"} if tokens[name] else {}
            kwargs: dict[str, Any] = {"headers": headers, "timeout": timeout, "allow_redirects": False}
            if route.method in ("POST", "PUT", "PATCH"):
                kwargs["json"] = {}
            reached.clear()
            async with client.request(route.method, path, **kwargs) as resp:
                status = resp.status
            checked += 1
            expected = allowed(policy, role)
            if expected and not reached:
                failures.append(f"{route.method} {path} as {name}: refused ({status}), policy {policy.describe()}")
            if not expected and (reached or status != (401 if role is None else 403)):
                failures.append(f"{route.method} {path} as {name}: let through ({status}), policy {policy.describe()}")
    assert checked > 300
    return failures
