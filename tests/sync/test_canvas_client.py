"""The Canvas client against the fake Canvas: pagination, failure classification, idempotent writes."""

import aiohttp
import pytest

from appliance.connectors.canvas.client import CanvasClient, classify, parse_links, with_retries
from appliance.connectors.errors import AuthFailed, NotFound, NotPermitted, Rejected, Throttled, Transient
from tests.fakes.canvas import THROTTLE_BODY, FakeCanvas, decode_bookmark


def client_for(
    fake: FakeCanvas,
    http: aiohttp.ClientSession,
    token: str = "canvas-token",  # noqa: S107
    **kw,
) -> CanvasClient:
    return CanvasClient(http, fake.base_url, token, account_id="1", **kw)


async def test_pages_follow_opaque_bookmarks_and_cap_per_page(canvas, http):
    for i in range(257):
        canvas.state.add_user(f"Learner {i}", sis_user_id=f"sis-{i}")
    canvas.max_per_page = 50
    client = client_for(canvas, http, per_page=100)
    pages = [page async for page in client.pages("accounts/1/users", [("search_term", "learner")])]
    assert [len(p) for p in pages] == [50] * 5 + [7]
    ids = [u["id"] for p in pages for u in p]
    assert len(ids) == len(set(ids)) == 257
    assert canvas.requests["GET /api/v1/accounts/{account_id}/users"] == 6


async def test_link_header_is_canvas_shaped(canvas, http):
    for i in range(3):
        canvas.state.add_user(f"U {i}")
    async with http.get(
        f"{canvas.base_url}/api/v1/accounts/1/users?per_page=2&search_term=u",
        headers={"Authorization": "Bearer canvas-token"},
    ) as resp:
        links = parse_links(resp.headers["Link"])
        assert float(resp.headers["X-Request-Cost"]) >= 0
        assert float(resp.headers["X-Rate-Limit-Remaining"]) > 0
    assert set(links) == {"current", "next", "first"}
    assert "page=bookmark%3A" in links["next"] or "page=bookmark:" in links["next"]
    assert "search_term=u" in links["next"]
    assert "per_page=2" in links["next"]
    assert "access_token" not in links["next"]


async def test_auth_failures_are_classified(canvas, http):
    with pytest.raises(AuthFailed, match="Invalid access token"):
        await client_for(canvas, http, token="wrong").probe()
    async with http.get(f"{canvas.base_url}/api/v1/accounts/1") as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"] == 'Bearer realm="canvas-lms"'
        assert (await resp.json())["status"] == "unauthenticated"
    other = CanvasClient(http, canvas.base_url, "canvas-token", account_id="2")
    with pytest.raises(NotPermitted):
        await other.probe()


async def test_throttling_403_and_429(canvas, http):
    client = client_for(canvas, http)
    canvas.throttle(hwm=60, outflow=0.001, cost=30)
    await client.probe()
    await client.probe()  # 60 charged of a 60 high-water mark: the next one is refused
    with pytest.raises(Throttled):
        await client.probe()
    async with http.get(
        f"{canvas.base_url}/api/v1/accounts/1", headers={"Authorization": "Bearer canvas-token"}
    ) as resp:
        assert resp.status == 403
        assert resp.content_type == "text/plain"
        assert await resp.text() == THROTTLE_BODY
        assert resp.headers["X-Rate-Limit-Remaining"] == "0.0"
        assert "X-Request-Cost" not in resp.headers
    canvas.throttle(hwm=60, outflow=0.001, cost=60, status=429)
    await client.probe()
    with pytest.raises(Throttled) as caught:
        await client.probe()
    assert caught.value.retry_after == 1.0


async def test_down_refused_503_and_recovery(canvas, http):
    client = client_for(canvas, http)
    await client.probe()
    await canvas.down()
    with pytest.raises(Transient):
        await client.probe(timeout=2)
    await canvas.up()
    await client.probe()
    await canvas.down("503")
    with pytest.raises(Transient):
        await client.probe()
    await canvas.up()
    await client.probe()


async def test_slow_upstream_times_out_as_transient(canvas, http):
    canvas.slow(1.0)
    with pytest.raises(Transient):
        await client_for(canvas, http).probe(timeout=0.2)


async def test_failure_share_and_retries(canvas, http):
    canvas.fail_share(0.5)
    client = client_for(canvas, http)
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    for _ in range(10):
        await with_retries(client.probe, attempts=30, sleep=fake_sleep)
    assert sum(canvas.injected.values()) == len(slept) > 0
    assert canvas.responses[500] == canvas.injected["500"]


async def test_check_before_create_and_rejections(canvas, http):
    client = client_for(canvas, http)
    assert await client.user_by_sis("u-1") is None
    body = {"user": {"name": "Ada Lovelace"}, "pseudonym": {"unique_id": "u-1", "sis_user_id": "u-1"}}
    created = await client.create_user(body)
    assert (await client.user_by_sis("u-1"))["id"] == created["id"]
    with pytest.raises(Rejected) as caught:
        await client.create_user(body)
    assert caught.value.status == 400
    assert caught.value.body["errors"]["pseudonym"]["sis_user_id"][0]["type"] == "taken"
    course = canvas.state.add_course("Algebra")
    assert await client.enrollments_of(str(course["id"]), "u-1") == []
    enrollment = await client.enroll(str(course["id"]), "u-1")
    assert [e["id"] for e in await client.enrollments_of(str(course["id"]), "u-1")] == [enrollment["id"]]
    await client.end_enrollment(str(course["id"]), enrollment["id"])
    assert await client.enrollments_of(str(course["id"]), "u-1") == []
    assert canvas.state.user_creates == {"u-1": 1}
    with pytest.raises(NotFound):
        await client.get("courses/999999")


async def test_string_ids_accept_header(canvas, http):
    course = canvas.state.add_course("Biology")
    headers = {"Authorization": "Bearer canvas-token", "Accept": "application/json+canvas-string-ids"}
    async with http.get(f"{canvas.base_url}/api/v1/courses/{course['id']}", headers=headers) as resp:
        data = await resp.json()
    assert data["id"] == str(course["id"])
    assert data["account_id"] == "1"


def test_classify_table():
    assert classify(200, {}, {}) is None
    assert isinstance(classify(403, {}, THROTTLE_BODY), Throttled)
    assert isinstance(classify(403, {}, {"status": "unauthorized"}), NotPermitted)
    assert isinstance(classify(429, {"Retry-After": "7"}, ""), Throttled)
    assert isinstance(classify(401, {"WWW-Authenticate": "Bearer"}, {}), AuthFailed)
    assert isinstance(classify(401, {}, {}), NotPermitted)
    assert isinstance(classify(422, {}, {"errors": {}}), Rejected)
    assert isinstance(classify(502, {}, ""), Transient)
    assert decode_bookmark("first") is None
    assert decode_bookmark("bookmark:!!") is None
