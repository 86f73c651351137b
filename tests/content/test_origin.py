"""The content origin: only archive entries there, a content pass instead of the session, ended with the session."""

import asyncio
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from appliance.auth.sessions import CACHE_TTL_S
from appliance.content.origin import PASS_COOKIE
from appliance.content.passes import ContentPass, PassKind
from appliance.keys import DB
from appliance.web.sites import port_after
from tests.content.conftest import Library


def _pass_of(headers: dict[str, str]) -> str:
    return headers["Cookie"].split(f"{PASS_COOKIE}=")[1]


async def test_serves_nothing_of_the_app(library: Library) -> None:
    await library.show("testbook")
    h = await library.user(role="system_admin")  # both cookies, as the browser sends them to both ports
    for path in ("/api/v1/auth/me", "/api/v1/users", "/login", "/library", "/library/read/testbook/home",
                 "/static/learner/reader.js", "/metrics", "/healthz", "/catalog/v2/entries", "/", "/videos/1",
                 "/catalog/v2/download/x/y.zim"):
        resp = await library.content.get(path, headers=h, allow_redirects=False)
        assert resp.status == 404, path
    resp = await library.content.post("/api/v1/users", json={"username": "x", "role": "system_admin"}, headers=h)
    assert resp.status in (404, 405)
    assert (await library.content.get("/content/testbook/a/algebra", headers=h)).status == 200


async def test_headers_of_the_content_origin(library: Library) -> None:
    await library.show("testbook")
    h = await library.user()
    app_origin = str(library.client.make_url("/")).rstrip("/")
    page = await library.content.get("/content/testbook/a/algebra", headers=h)
    csp = page.headers["Content-Security-Policy"]
    assert f"frame-ancestors 'self' {app_origin}" in csp
    assert "connect-src 'self';" in csp and "form-action 'self'" in csp
    assert app_origin not in csp.replace(f"frame-ancestors 'self' {app_origin}", "")
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Cache-Control"] == "private, no-cache"
    # Assets of a signed-in reader stay out of shared caches; anonymous ones may be cached by anyone.
    image = await library.content.get("/content/testbook/img/logo.png", headers=h)
    assert image.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    await library.client.app[DB].execute("UPDATE facilities SET anonymous_browsing = 1 WHERE id = 1")
    await library.service.refresh(force=True)
    anonymous = await library.content.get("/content/testbook/img/logo.png")
    assert anonymous.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert "frame-ancestors 'none'" in anonymous.headers["Content-Security-Policy"]  # no pass: never framed
    assert (await library.content.get("/content/testbook/a/algebra", headers=await library.anonymous())).status == 200


async def test_app_origin_serves_no_archive_bytes(library: Library) -> None:
    await library.show("testbook")
    h = await library.user()
    c = library.client
    resp = await c.get("/content/testbook/a/q%3Fx", headers=h, allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (302, "/library/read/testbook/a/q%3Fx")
    resp = await c.get("/content/testbook", headers=h, allow_redirects=False)
    assert resp.headers["Location"] == "/library/read/testbook/"
    resp = await c.get("/random?content=testbook", headers=h, allow_redirects=False)
    assert resp.headers["Location"] == "/library/read/testbook/?random"
    reader = await c.get("/library/read/testbook/home", headers=h)
    content_origin = str(library.content.make_url("/")).rstrip("/")
    assert f"frame-src {content_origin}" in reader.headers["Content-Security-Policy"]
    assert "script-src 'self'" in reader.headers["Content-Security-Policy"]
    feed = await (await c.get("/catalog/v2/entries", headers=h)).text()
    assert f'href="{content_origin}/content/testbook/"' in feed
    download = await c.get("/catalog/v2/download/x/y.zim", headers=h)
    assert download.status == 404


async def test_passes_are_checked(library: Library) -> None:
    await library.show("testbook")
    h = await library.user()
    cookie = _pass_of(h)
    service = library.service
    get = library.content.get
    assert (await get("/content/testbook/a/algebra", headers={"Cookie": f"{PASS_COOKIE}={cookie}"})).status == 200
    body, mac = cookie.split(".")
    for forged in (body + "." + mac[:-2] + ("AA" if not mac.endswith("AA") else "BB"), body, "x" * 700, ""):
        resp = await get("/content/testbook/a/algebra", headers={"Cookie": f"{PASS_COOKIE}={forged}"})
        assert resp.status == 403, forged
    found = service.passes.verify(PassKind.COOKIE, cookie, time.time())
    assert found is not None and found.user_id == library.user_ids[h["Cookie"]]
    # A URL pass is no cookie pass, and the other way round; an expired one is refused.
    as_url = service.passes.sign(PassKind.URL, found)
    assert (await get("/content/testbook/a/algebra", headers={"Cookie": f"{PASS_COOKIE}={as_url}"})).status == 403
    assert (await get(f"/_pass?t={cookie}", allow_redirects=False)).status == 403
    stale = service.passes.sign(PassKind.URL, ContentPass(found.session_id, found.user_id, found.app_origin,
                                                          int(time.time()) - 1))
    resp = await get(f"/_pass?t={stale}", allow_redirects=False)
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "invalid_pass"
    fresh = service.passes.sign(PassKind.URL, ContentPass(found.session_id, found.user_id, found.app_origin,
                                                          int(time.time()) + 30))
    for target, lands in (("/content/testbook/home", "/content/testbook/home"), ("//evil.example/x", "/_blank"),
                          ("/api/v1/auth/me", "/_blank"), ("https://evil.example/", "/_blank"),
                          ("/content/\\evil", "/_blank")):
        resp = await get("/_pass", params={"t": fresh, "next": target}, allow_redirects=False)
        assert resp.status == 303
        location = urlsplit(resp.headers["Location"])
        assert (location.path, parse_qs(location.query)["next"]) == ("/_frame", [lands])
        cookie_header = resp.headers["Set-Cookie"]
        assert "HttpOnly" in cookie_header and "SameSite=Lax" in cookie_header
    frame = await get("/_frame?next=/content/testbook/home", headers={"Cookie": f"{PASS_COOKIE}={cookie}"})
    assert frame.status == 200
    assert f'data-app-origin="{found.app_origin}"' in await frame.text()
    assert "script-src 'self';" in frame.headers["Content-Security-Policy"]


async def test_pass_api(library: Library, make_user: Any) -> None:
    c = library.client
    assert (await c.get("/api/v1/library/pass")).status == 401  # no anonymous browsing here
    h = await library.user()
    data = (await (await c.get("/api/v1/library/pass", headers=h)).json())["data"]
    assert data["origin"] == str(library.content.make_url("/")).rstrip("/")
    assert data["url"].startswith(data["origin"] + "/_pass?t=")
    token = data["url"].split("t=")[1]
    issued = library.service.passes.verify(PassKind.URL, token, time.time())
    assert issued is not None and issued.app_origin == str(c.make_url("/")).rstrip("/")
    # The page's own origin is believed only when it is the host the request came to.
    spoof = await (await c.get("/api/v1/library/pass", params={"origin": "http://evil.example"}, headers=h)).json()
    spoofed = library.service.passes.verify(PassKind.URL, spoof["data"]["url"].split("t=")[1], time.time())
    assert spoofed is not None and spoofed.app_origin == issued.app_origin


@pytest.mark.parametrize("ending", ["logout", "deactivate", "reset"])
async def test_pass_ends_with_the_session(library: Library, ending: str) -> None:
    await library.show("testbook")
    h = await library.user()
    admin = await library.user(role="system_admin")
    uid = library.user_ids[h["Cookie"]]
    only_pass = {"Cookie": f"{PASS_COOKIE}={_pass_of(h)}"}
    get = library.content.get
    assert (await get("/content/testbook/a/algebra", headers=only_pass)).status == 200
    c = library.client
    if ending == "logout":
        resp = await c.post("/api/v1/auth/logout", headers=h)
    elif ending == "deactivate":
        resp = await c.patch(f"/api/v1/users/{uid}", json={"active": False}, headers=admin)
    else:
        resp = await c.post(f"/api/v1/users/{uid}/reset-password", json={}, headers=admin)
    assert resp.status in (200, 204), await resp.text()
    ended_at = time.monotonic()
    while (await get("/content/testbook/a/algebra", headers=only_pass)).status == 200:
        assert time.monotonic() - ended_at < CACHE_TTL_S + 1.0, "the pass outlived its session"
        await asyncio.sleep(0.1)


async def test_token_callers_get_an_anonymous_pass(library: Library) -> None:
    admin = await library.user(role="system_admin")
    made = await library.client.post("/api/v1/tokens", json={"name": "t", "role": "learner"}, headers=admin)
    secret = (await made.json())["data"]["token"]
    data = (await (await library.client.get("/api/v1/library/pass",
                                            headers={"Authorization": f"Bearer {secret}"})).json())["data"]
    issued = library.service.passes.verify(PassKind.URL, data["url"].split("t=")[1], time.time())
    assert issued is not None and issued.session_id == 0 and issued.user_id == 0


def test_content_port_rule() -> None:
    assert port_after(-1, 8080)(8080) == 8081
    assert port_after(-1, 0)(41234) == 0  # a free port when the app's is one too
    assert port_after(9000, 8080)(8080) == 9000
    with pytest.raises(RuntimeError, match="must differ"):
        port_after(8080, 8080)(8080)
