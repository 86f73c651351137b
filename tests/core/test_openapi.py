"""The OpenAPI document: generated from the routes, complete, served to staff only."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient

from appliance.web.openapi import document, operation_id
from appliance.web.policy import policy_of
from tests.conftest import MakeUser


async def signed_in_headers(client: TestClient, make_user: MakeUser, role: str) -> dict[str, str]:
    """Sign the test client in as a new user of this role (the session cookie stays in its jar)."""
    user = await make_user(client, role=role)
    resp = await client.post("/api/v1/auth/login", json={"username": user["username"],
                                                         "password": user["password"]})
    assert resp.status == 200
    return {}


def _routes(app: web.Application) -> set[tuple[str, str]]:
    found = set()
    for route in app.router.routes():
        resource = route.resource
        if resource is None or isinstance(resource, web.StaticResource) or route.method in ("HEAD", "*"):
            continue
        found.add((route.method.lower(), resource.canonical))
    return found


async def test_every_route_is_in_the_document_with_its_policy(client: TestClient, make_user: MakeUser) -> None:
    staff = await signed_in_headers(client, make_user, "facility_admin")
    resp = await client.get("/api/v1/openapi.json", headers=staff)
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"] == "3.1.0"
    missing = [(m, p) for m, p in _routes(client.app) if m not in doc["paths"].get(p, {})]
    assert not missing, f"routes missing from the OpenAPI document: {missing}"
    for route in client.app.router.routes():
        if isinstance(route.resource, web.StaticResource) or route.method in ("HEAD", "*"):
            continue
        op = doc["paths"][route.resource.canonical][route.method.lower()]
        policy = policy_of(route.handler)
        assert op["x-policy"] == (policy.describe() if policy else "denied (undeclared)")
        assert op["operationId"] == operation_id(route.method, route.resource.canonical)
    users = doc["paths"]["/api/v1/users/{id}"]["get"]
    assert users["parameters"][0] == {"name": "id", "in": "path", "required": True,
                                      "schema": {"type": "string", "pattern": "^(?:\\d{1,12})$"}}
    assert "learner" not in users["x-roles"]
    created = doc["paths"]["/api/v1/users"]["post"]["responses"]["201"]
    assert created["links"]["GetUser"]["operationId"] == "get_api_v1_users_id"


def test_a_new_route_appears_without_being_declared() -> None:
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        """Something new."""
        return web.json_response({})

    app.router.add_post(r"/api/v1/new/{thing:[a-z]+}", handler)
    op = document(app)["paths"]["/api/v1/new/{thing}"]["post"]
    assert op["summary"] == "Something new."
    assert op["x-policy"] == "denied (undeclared)"
    assert op["parameters"][0]["schema"]["pattern"] == "^(?:[a-z]+)$"
    assert op["requestBody"]["content"]["application/json"]["schema"] == {"type": "object"}


async def test_document_is_for_staff_only(client: TestClient, make_user: MakeUser) -> None:
    assert (await client.get("/api/v1/openapi.json")).status == 401
    learner = await signed_in_headers(client, make_user, "learner")
    assert (await client.get("/api/v1/openapi.json", headers=learner)).status == 403
