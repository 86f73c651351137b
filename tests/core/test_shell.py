"""Shell pages: start page, sign-in redirects, safe `next` targets, security headers."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from appliance.web.shell.pages import safe_next
from tests.conftest import MakeUser

HTML = {"Accept": "text/html"}


async def test_anonymous_start_page_goes_to_sign_in(client: TestClient) -> None:
    resp = await client.get("/", headers=HTML, allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/login"
    resp = await client.get("/login", headers=HTML)
    assert resp.status == 200
    text = await resp.text()
    assert 'id="login"' in text
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    assert "http://" not in text and "https://" not in text  # offline: nothing from elsewhere


async def test_pages_needing_a_session_redirect_browsers_back_after_sign_in(client: TestClient) -> None:
    resp = await client.get("/account/password?x=1", headers=HTML, allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/login?next=/account/password%3Fx%3D1"
    resp = await client.get("/api/v1/auth/me", headers=HTML, allow_redirects=False)
    assert resp.status == 401  # the API never redirects
    assert resp.content_type == "application/json"


@pytest.mark.parametrize(
    ("given", "expected"),
    [("/library", "/library"), ("//evil.example/x", "/"), ("https://evil.example", "/"), ("/\\evil", "/"),
     ("", "/"), (None, "/"), ("/a?b=c", "/a?b=c"),
     # what a browser does before following: tab/newline removed, backslash is a slash, edges trimmed
     ("/\t/evil.example", "/"), ("/\n/evil.example", "/"), ("/\r\n/evil.example", "/"), (" //evil.example", "/"),
     ("\x00//evil.example", "/"), ("/\\/evil.example", "/"), ("\\\\evil.example", "/"),
     ("/%09/evil.example", "/%09/evil.example"),
     ("/\t", "/"), ("/li\tbrary", "/library"), ("/a\x7f", "/")],
)
def test_safe_next(given: str | None, expected: str) -> None:
    assert safe_next(given) == expected


@pytest.mark.parametrize("attack", ["/%09/evil.example", "/%0a/evil.example", "/%0d%0a/evil.example",
                                    "%20//evil.example", "/%5C/evil.example", "%5C%5Cevil.example"])
async def test_login_page_never_points_next_at_another_host(client: TestClient, attack: str) -> None:
    resp = await client.get(f"/login?next={attack}")
    text = await resp.text()
    # the sign-in form carries where to go next in a hidden field; it must be the plain start page
    assert '<input type="hidden" name="next" value="/">' in text, text


async def test_signed_in_start_page_and_admin_links(client: TestClient, make_user: MakeUser) -> None:
    learner = await make_user(client, role="learner")
    resp = await client.post("/api/v1/auth/login", json={"username": learner["username"],
                                                         "password": learner["password"]})
    assert resp.status == 200
    resp = await client.get("/", headers=HTML)
    text = await resp.text()
    assert resp.status == 200
    assert f"Welcome, {learner['username']}" in text
    assert 'href="/admin"' not in text
    resp = await client.get("/admin", headers=HTML)
    assert resp.status == 403
    assert resp.content_type == "text/html"


async def test_favicon_is_an_empty_cached_answer_not_a_404(client: TestClient) -> None:
    resp = await client.get("/favicon.ico")
    assert resp.status == 204
    assert "max-age" in resp.headers["Cache-Control"]
