"""HTTP conventions: envelope, request ids, pagination errors, 413, invalid JSON, 404/405, HTML errors, 500s."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from appliance.app import create_app
from appliance.config import Config
from appliance.web.policy import public
from appliance.web.responses import page_params, paginated, read_json

ITEMS = [{"n": i} for i in range(45)]


@public
async def list_items(request: web.Request) -> web.Response:
    page = page_params(request)
    return paginated(ITEMS[page.offset: page.offset + page.limit], page, len(ITEMS))


@public
async def echo(request: web.Request) -> web.Response:
    body = await read_json(request)
    return web.json_response({"data": body, "meta": {}})


@public
async def explode(request: web.Request) -> web.Response:
    raise RuntimeError("secret internals: password=hunter2")


async def no_policy(request: web.Request) -> web.Response:
    return web.json_response({"data": "should never be reached"})


@pytest.fixture
async def conv_client(config_factory: Callable[..., Config], app_client: Any) -> TestClient:
    app = create_app(config_factory(http={"max_body_bytes": 2048}), features=False)
    app.router.add_get("/api/v1/test/items", list_items)
    app.router.add_post("/api/v1/test/echo", echo)
    app.router.add_get("/api/v1/test/explode", explode)
    app.router.add_get("/api/v1/test/undeclared", no_policy)
    from aiohttp.test_utils import TestServer

    client = TestClient(TestServer(app))
    await client.start_server()
    yield client
    await client.close()


async def test_success_envelope_and_pagination_meta(conv_client: TestClient) -> None:
    resp = await conv_client.get("/api/v1/test/items", params={"page": "3", "per_page": "20"})
    assert resp.status == 200
    body = await resp.json()
    assert body["data"] == ITEMS[40:45]
    assert body["meta"] == {"page": 3, "per_page": 20, "total": 45, "total_pages": 3,
                            "has_next": False, "has_prev": True}


@pytest.mark.parametrize(
    ("params", "name"),
    [({"page": "0"}, "page"), ({"page": "x"}, "page"), ({"per_page": "1000000"}, "per_page"),
     ({"per_page": "0"}, "per_page"), ({"page": "1.5"}, "page"), ({"per_page": "-3"}, "per_page"),
     ({"page": "9" * 40}, "page")],
)
async def test_pagination_errors_name_the_parameter(conv_client: TestClient, params: dict[str, str],
                                                    name: str) -> None:
    resp = await conv_client.get("/api/v1/test/items", params=params)
    assert resp.status == 400
    err = (await resp.json())["error"]
    assert err["code"] == "invalid_parameter"
    assert err["details"]["parameter"] == name
    assert err["message"].startswith(name)


async def test_request_id_generated_echoed_or_replaced(conv_client: TestClient) -> None:
    resp = await conv_client.get("/healthz")
    generated = resp.headers["X-Request-ID"]
    assert len(generated) == 32
    resp = await conv_client.get("/healthz", headers={"X-Request-ID": "abc-123.x"})
    assert resp.headers["X-Request-ID"] == "abc-123.x"
    for insane in ("has space", "x" * 200, "<script>", "a\tb"):
        resp = await conv_client.get("/healthz", headers={"X-Request-ID": insane})
        assert resp.headers["X-Request-ID"] != insane
        assert len(resp.headers["X-Request-ID"]) == 32


async def test_errors_carry_request_id_too(conv_client: TestClient) -> None:
    resp = await conv_client.get("/api/v1/nothing-here", headers={"X-Request-ID": "rid-404"})
    assert resp.status == 404
    assert resp.headers["X-Request-ID"] == "rid-404"
    body = await resp.json()
    assert body["error"]["code"] == "not_found"


async def test_invalid_json_is_400(conv_client: TestClient) -> None:
    resp = await conv_client.post("/api/v1/test/echo", data=b"{not json", headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "invalid_json"
    resp = await conv_client.post("/api/v1/test/echo", data=b"\xff\xfe", headers={"Content-Type": "application/json"})
    assert (await resp.json())["error"]["code"] == "invalid_json"
    resp = await conv_client.post("/api/v1/test/echo", json=[1, 2])
    assert (await resp.json())["error"]["code"] == "invalid_body"


async def test_body_over_limit_is_413(conv_client: TestClient) -> None:
    resp = await conv_client.post("/api/v1/test/echo", json={"x": "y" * 5000})
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "payload_too_large"

    async def chunks():  # no Content-Length: the limit must hold while streaming too
        for _ in range(10):
            yield b"a" * 1000

    resp = await conv_client.post("/api/v1/test/echo", data=chunks())
    assert resp.status == 413


async def test_unknown_api_route_is_json_404_and_browser_gets_html(conv_client: TestClient) -> None:
    resp = await conv_client.get("/api/v1/nope", headers={"Accept": "text/html"})
    assert resp.status == 404
    assert resp.content_type == "application/json"
    resp = await conv_client.get("/no/such/page", headers={"Accept": "text/html,application/xhtml+xml"})
    assert resp.status == 404
    assert resp.content_type == "text/html"
    text = await resp.text()
    assert "<h1>" in text and resp.headers["X-Request-ID"] in text


async def test_method_not_allowed_is_enveloped(conv_client: TestClient) -> None:
    resp = await conv_client.delete("/api/v1/test/items")
    assert resp.status == 405
    assert (await resp.json())["error"]["code"] == "method_not_allowed"
    assert "GET" in resp.headers["Allow"]


async def test_500_has_no_stack_trace_and_is_logged_with_request_id(
    conv_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    from appliance.observability.logging import _ContextFilter

    caplog.handler.addFilter(_ContextFilter())
    with caplog.at_level(logging.ERROR):
        resp = await conv_client.get("/api/v1/test/explode", headers={"X-Request-ID": "boom-1"})
    assert resp.status == 500
    text = await resp.text()
    assert "Traceback" not in text and "hunter2" not in text and "RuntimeError" not in text
    assert (await resp.json())["error"] == {"code": "internal_error", "message": "internal error", "details": None}
    records = [r for r in caplog.records if "unhandled error" in r.getMessage()]
    assert records and records[0].request_id == "boom-1"  # type: ignore[attr-defined]


async def test_route_without_policy_is_denied(conv_client: TestClient) -> None:
    resp = await conv_client.get("/api/v1/test/undeclared")
    assert resp.status == 403
    assert (await resp.json())["error"]["message"] == "this route has no access policy"
