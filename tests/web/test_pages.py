"""Server-rendered pages in process: escaping, sign-in by form, CSRF, error pages, catalogues, page weight."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from babel.messages.catalog import Message
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from appliance.keys import DB
from appliance.web import i18n
from appliance.web.templating import duration, filesize, highlight
from tests.conftest import MakeUser

HTML = {"Accept": "text/html"}
LOCALE = Path(i18n.__file__).resolve().parent / "locale"


async def form_login(client: TestClient, username: str, password: str, next_path: str = "/") -> tuple[int, str]:
    page = await (await client.get(f"/login?next={next_path}", headers=HTML)).text()
    token = re.search(r'name="login_token" value="([^"]+)"', page)
    assert token is not None
    resp = await client.post("/login", data={"username": username, "password": password, "next": next_path,
                                             "login_token": token.group(1)}, headers=HTML, allow_redirects=False)
    return resp.status, resp.headers.get("Location", "") or await resp.text()


async def csrf_of(client: TestClient, path: str = "/account") -> str:
    page = await (await client.get(path, headers=HTML)).text()
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


async def test_form_sign_in_redirects_and_never_echoes_the_password(client: TestClient, make_user: MakeUser) -> None:
    user = await make_user(client)
    status, body = await form_login(client, user["username"], "wrong password 1")
    assert status == 401
    assert "wrong password 1" not in body
    assert "The username or password is not right" in body
    status, location = await form_login(client, user["username"], user["password"], "/library")
    assert status == 303 and location == "/library"


async def test_login_form_needs_its_own_token(client: TestClient, make_user: MakeUser) -> None:
    user = await make_user(client)
    resp = await client.post("/login", data={"username": user["username"], "password": user["password"]},
                             headers=HTML, allow_redirects=False)
    assert resp.status == 403  # a form posted from another site has no matching cookie and token
    assert "This form had expired" in await resp.text()
    assert "Set-Cookie" not in resp.headers or "appliance_session" not in resp.headers["Set-Cookie"]


async def test_page_forms_need_the_session_csrf_token(client: TestClient, make_user: MakeUser) -> None:
    user = await make_user(client, role="system_admin")
    await form_login(client, user["username"], user["password"])
    resp = await client.post("/account/language", data={"locale": "es"}, headers=HTML)
    assert resp.status == 403
    token = await csrf_of(client)
    resp = await client.post("/account/language", data={"locale": "es", "csrf_token": token}, headers=HTML)
    assert resp.status == 200 and "Tu cuenta" in await resp.text()


async def test_admin_pages_escape_what_users_typed(client: TestClient, make_user: MakeUser) -> None:
    admin = await make_user(client, role="system_admin")
    await make_user(client, username="evil", first_name="<script>alert(1)</script>")
    await form_login(client, admin["username"], admin["password"])
    for path in ("/admin/users?q=evil", "/admin/users?q=<b>x</b>"):
        page = await (await client.get(path, headers=HTML)).text()
        assert "<script>alert" not in page and "<b>x</b>" not in page


async def test_staff_pages_render(client: TestClient, make_user: MakeUser) -> None:
    admin = await make_user(client, role="system_admin")
    learner = await make_user(client)
    await form_login(client, admin["username"], admin["password"])
    for path in ("/admin", "/admin/users", "/admin/users/new", f"/admin/users/{learner['id']}",
                 "/admin/users/import", "/admin/libraries", "/admin/videos", "/admin/audit",
                 "/admin/audit?action=user_created&since=2020-01-01", "/admin/facilities",
                 "/admin/providers", "/admin/links", "/admin/reports", "/admin/reports?from=2020-01-01"):
        resp = await client.get(path, headers=HTML)
        assert resp.status == 200, (path, await resp.text())
        assert (await resp.text()).count("<h1") == 1, path
    token = await csrf_of(client, "/admin/users/new")
    resp = await client.post("/admin/users/new", data={"csrf_token": token, "username": "new.one",
                                                       "role": "learner", "facility_id": "1"}, headers=HTML)
    assert resp.status == 200, await resp.text()
    assert 'id="temporary-password"' in await resp.text()


async def test_error_pages_are_friendly_and_translated(client: TestClient) -> None:
    resp = await client.get("/no/such/page", headers=HTML)
    text = await resp.text()
    assert resp.status == 404 and "Page not found" in text and 'class="skip"' in text
    resp = await client.get("/no/such/page", headers={**HTML, "Accept-Language": "es-MX,es;q=0.9"})
    assert "Página no encontrada" in await resp.text()
    resp = await client.get("/api/v1/nothing", headers=HTML)
    assert resp.content_type == "application/json"  # the API keeps its envelope


@pytest.mark.parametrize(("cookie", "header", "expected"), [
    (None, "", "en"), (None, "es-ES,es;q=0.9,en;q=0.8", "es"), (None, "fr-FR, es;q=0.5", "es"),
    (None, "es;q=0, en", "en"), ("es", "en", "es"), ("xx", "es", "es"), (None, "garbage;;q=x,,", "en"),
])
def test_language_choice(cookie: str | None, header: str, expected: str) -> None:
    assert i18n.choose(cookie, header) == expected


def test_highlight_escapes_then_marks() -> None:
    out = str(highlight("<img src=x> Photosynthesis & light", "photo light <img"))
    assert "<img" not in out and "&lt;<mark>img</mark> src=x&gt;" in out
    assert "<mark>light</mark>" in out
    assert str(highlight("a", "")) == "a"


def test_human_sizes_and_lengths() -> None:
    assert filesize(1_500_000) == "1.5 MB" and filesize(None) == "–"
    assert duration(45) == "0:45" and duration(3725) == "1:02:05" and duration(None) == "–"


def test_compiled_catalogues_match_their_sources() -> None:
    """The committed .mo must be the compiled .po (else a translation edit silently does nothing)."""
    for po_path in LOCALE.glob("*/LC_MESSAGES/messages.po"):
        with po_path.open("rb") as fh:
            po = read_po(fh)
        with po_path.with_suffix(".mo").open("rb") as fh:
            mo = read_mo(fh)
        def key(m: Message) -> str:
            return m.id if isinstance(m.id, str) else m.id[0]

        def text(m: Message) -> tuple[str, ...]:
            return (m.string,) if isinstance(m.string, str) else tuple(m.string)

        expected = {key(m): text(m) for m in po if m.id and m.string}
        got = {key(m): text(m) for m in mo if m.id}
        assert got == expected, po_path
        missing = [m.id for m in po if m.id and not m.string]
        assert missing == [], f"untranslated in {po_path}: {missing}"


async def test_learner_pages_stay_small(client: TestClient, make_user: MakeUser) -> None:
    """A learner page with its stylesheet and scripts stays far below 100 KB."""
    user = await make_user(client)
    await form_login(client, user["username"], user["password"])
    for path in ("/", "/library", "/library/search?q=x", "/videos", "/account"):
        page = await (await client.get(path, headers=HTML)).read()
        assets = re.findall(rb'(?:src|href)="(/static/[^"]+)"', page)
        total = len(page) + sum([len(await (await client.get(a.decode())).read()) for a in assets])
        assert total < 100_000, (path, total)


async def test_providers_page_retries_a_refused_delivery(client: TestClient, make_user: MakeUser) -> None:
    """The staff page lists a refused delivery and its Retry form queues it, for an admin of that facility only."""
    db = client.app[DB]
    await db.execute("INSERT INTO providers (id, type, name, base_url, credentials, facility_id, uplink)"
                     " VALUES (7, 'canvas_oss', 'Canvas Unit A', 'http://127.0.0.1:9', 'x', 1, 'down')")
    await db.execute("INSERT INTO outbox (id, topic, aggregate_id, payload)"
                     " VALUES (70, 'roster.user.created', 'u', '{}')")
    await db.execute("INSERT INTO dead_letters (id, provider_id, outbox_id, topic, status_code, error)"
                     " VALUES (5, 7, 70, 'roster.user.created', 422, 'sis id already taken')")
    admin = await make_user(client, role="facility_admin")
    await form_login(client, admin["username"], admin["password"])
    page = await (await client.get("/admin/providers", headers=HTML)).text()
    assert "Canvas Unit A" in page and "sis id already taken" in page
    token = await csrf_of(client, "/admin/providers")
    resp = await client.post("/admin/providers/dead-letters/5/retry", data={"csrf_token": token}, headers=HTML)
    assert resp.status == 200 and "Queued for another try." in await resp.text()
    assert await db.fetchval("SELECT state FROM dead_letters WHERE id = 5") == "retrying"
    resp = await client.post("/admin/providers/dead-letters/5/retry", data={"csrf_token": token}, headers=HTML)
    assert resp.status == 409  # already retrying: said on the page, styled as an error
    assert 'class="flash error"' in await resp.text()


def test_every_feature_wires_itself_in_once() -> None:
    """Each route, template folder, home or dashboard section and console page is registered exactly once."""
    from collections import Counter

    from appliance.app import create_app
    from appliance.config import load_config
    from appliance.web import templating

    app = create_app(load_config(None))
    routes = Counter((r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None)
    assert [k for k, n in routes.items() if n > 1] == []
    folders = Counter(tuple(loader.searchpath) for loader in app[templating.LOADERS])  # type: ignore[attr-defined]
    assert [k for k, n in folders.items() if n > 1] == []
    for key in (templating.HOME_SECTIONS, templating.DASHBOARD_SECTIONS, templating.ADMIN_PAGES, templating.NAV):
        entries = Counter(repr(e) for e in app[key])
        assert [k for k, n in entries.items() if n > 1] == [], key
    assert ("GET", "/admin/links") in routes and ("GET", "/api/v1/links") in routes
