"""Providers behind the egress policy: classified test reasons, own-origin pagination, who sets base_url."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from appliance.connectors.canvas.client import CanvasClient
from appliance.connectors.contract import follow_link
from appliance.connectors.errors import ForeignLink
from appliance.keys import HTTP_CLIENT
from tests.sync.conftest import FAST_SYNC
from tests.sync.helpers import as_user, install_header_auth
from tests.sync.test_push import add_provider

SECRET = "INTERNAL-SERVICE-SAYS-redis-6.2-at-10.0.0.5"


async def _server(handler: Any) -> TestServer:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def _client(app_client: Any, config_factory: Any, networks: list[str]) -> Any:
    client = await app_client(config_factory(sync=FAST_SYNC, egress={"allowed_networks": networks}))
    install_header_auth(client)
    return client


async def _create(client: Any, user: dict[str, Any], base_url: str) -> dict[str, Any]:
    body = {"type": "canvas_oss", "name": "Inside", "base_url": base_url, "account_id": "1",
            "credentials": {"access_token": "tok"}}
    resp = await client.post("/api/v1/providers", json=body, headers=as_user(user))
    assert resp.status == 201, await resp.text()
    return (await resp.json())["data"]  # type: ignore[no-any-return]


async def test_probe_of_an_internal_address_is_refused_by_policy(app_client, config_factory, make_user):
    hits: list[str] = []

    async def internal(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"errors": [{"message": SECRET}]}, status=400)

    server = await _server(internal)
    try:
        client = await _client(app_client, config_factory, [])
        admin = await make_user(client, role="system_admin")
        provider = await _create(client, admin, f"http://127.0.0.1:{server.port}")
        resp = await client.post(f"/api/v1/providers/{provider['id']}/test", headers=as_user(admin))
        text = await resp.text()
        # what the attack needs first: the request never reached the service, and its text is not echoed
        assert hits == []  # the port scan never reached the service
        assert SECRET not in text
        result = (await resp.json())["data"]
        assert result["reason"] == "refused_by_policy"
        assert result["reachable"] is False
    finally:
        await server.close()


@pytest.mark.parametrize(("status", "reason"), [(400, "unexpected_answer"), (500, "unreachable"),
                                                 (403, "auth_failed")])
async def test_probe_never_echoes_upstream_text(app_client, config_factory, make_user, status, reason):
    async def upstream(request: web.Request) -> web.Response:
        return web.json_response({"errors": [{"message": SECRET}]}, status=status)

    server = await _server(upstream)
    try:
        client = await _client(app_client, config_factory, ["127.0.0.0/8"])
        admin = await make_user(client, role="system_admin")
        provider = await _create(client, admin, f"http://127.0.0.1:{server.port}")
        resp = await client.post(f"/api/v1/providers/{provider['id']}/test", headers=as_user(admin))
        text = await resp.text()
        assert SECRET not in text  # the upstream's own words never come back to the caller
        assert (await resp.json())["data"]["reason"] == reason
    finally:
        await server.close()


async def test_only_system_admins_create_providers_or_move_base_url(app_client, config_factory, make_user,
                                                                   make_facility, canvas):
    client = await _client(app_client, config_factory, ["127.0.0.0/8"])
    sysadmin = await make_user(client, role="system_admin")
    dept = await make_user(client, role="department_admin")
    body = {"type": "canvas_oss", "name": "Mine", "base_url": canvas.base_url, "account_id": "1",
            "credentials": {"access_token": "tok"}, "facility_id": 1}
    assert (await client.post("/api/v1/providers", json=body, headers=as_user(dept))).status == 403
    provider = await add_provider(client, sysadmin, canvas, facility_id=1)
    resp = await client.patch(f"/api/v1/providers/{provider['id']}", json={"base_url": "http://127.0.0.1:1"},
                              headers=as_user(dept))
    assert resp.status == 403
    # the department admin still runs its own facility's provider (state, same base_url)
    resp = await client.patch(f"/api/v1/providers/{provider['id']}",
                              json={"state": "disabled", "base_url": canvas.base_url}, headers=as_user(dept))
    assert resp.status == 200
    resp = await client.patch(f"/api/v1/providers/{provider['id']}", json={"base_url": "http://127.0.0.1:1"},
                              headers=as_user(sysadmin))
    assert resp.status == 200


def test_follow_link_keeps_to_the_provider_origin() -> None:
    base = "https://canvas.example/sub"
    assert str(follow_link(base, "https://canvas.example/api/v1/x?page=2")) == "https://canvas.example/api/v1/x?page=2"
    assert str(follow_link(base, "/api/v1/x?page=bookmark:abc")).startswith("https://canvas.example/api/v1/x")
    for bad in ("https://evil.example/api/v1/x", "http://canvas.example/api/v1/x", "https://canvas.example:444/x",
                "//evil.example/x", "https://canvas.example@evil.example/x"):
        with pytest.raises(ForeignLink):
            follow_link(base, bad)


async def test_pagination_to_another_origin_never_gets_the_token(app_client, config_factory):
    stolen: list[str | None] = []

    async def thief(request: web.Request) -> web.Response:
        stolen.append(request.headers.get("Authorization"))
        return web.json_response([])

    other = await _server(thief)

    async def canvas_like(request: web.Request) -> web.Response:
        link = f'<http://127.0.0.1:{other.port}/api/v1/accounts/1/users?page=2>; rel="next"'
        return web.json_response([{"id": 1}], headers={"Link": link})

    server = await _server(canvas_like)
    try:
        client = await app_client(config_factory(egress={"allowed_networks": ["127.0.0.0/8"]}))
        canvas = CanvasClient(client.app[HTTP_CLIENT], f"http://127.0.0.1:{server.port}", "secret-token",
                              account_id="1")
        pages = canvas.pages("accounts/1/users")
        assert await pages.__anext__() == [{"id": 1}]
        raised: BaseException | None = None
        try:
            await pages.__anext__()
        except Exception as exc:  # noqa: BLE001 - checked below, after what matters most
            raised = exc
        assert stolen == []  # the other origin never got a request, let alone the token
        assert isinstance(raised, ForeignLink), raised
    finally:
        await server.close()
        await other.close()
