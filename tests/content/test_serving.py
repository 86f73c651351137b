"""GET/HEAD /content: access, visibility, redirects, awkward paths, caching, Range and gzip."""

import gzip

from appliance.keys import DB
from tests.content.conftest import Library


async def test_requires_sign_in_and_visibility(library: Library) -> None:
    c = library.content
    resp = await c.get("/content/testbook/a/photosynthesis")
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "pass_required"
    learner = await library.user()
    # The content origin never reads the app session: the session cookie alone opens nothing there.
    session_only = {"Cookie": learner["Cookie"].split(";")[0]}
    await library.show("testbook")
    assert (await c.get("/content/testbook/a/photosynthesis", headers=session_only)).status == 403
    await library.client.app[DB].execute("DELETE FROM library_visibility")
    await library.service.refresh(force=True)
    resp = await c.get("/content/testbook/a/photosynthesis", headers=learner)
    assert resp.status == 404  # hidden until an admin makes it visible
    await library.show("testbook")
    resp = await c.get("/content/testbook/a/photosynthesis", headers=learner)
    assert resp.status == 200
    assert resp.content_type == "text/html"
    assert "Plants turn light into sugar" in await resp.text()
    other = await library.user(facility_id=await _facility(library))
    assert (await c.get("/content/testbook/a/photosynthesis", headers=other)).status == 404
    admin = await library.user(role="system_admin")
    assert (await c.get("/content/noindex/a/algebra", headers=admin)).status == 200


async def _facility(library: Library) -> int:
    from appliance.keys import DB

    return (await library.client.app[DB].execute("INSERT INTO facilities (name) VALUES ('Unit B')")).lastrowid


async def test_main_page_redirects_and_paths(library: Library) -> None:
    await library.show("testbook")
    await library.show("zimfile")
    h = await library.user()
    c = library.content
    resp = await c.get("/content/testbook", headers=h, allow_redirects=False)
    assert resp.headers["Location"] == "/content/testbook/"
    resp = await c.get("/content/testbook/", headers=h, allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (302, "/content/testbook/home")
    resp = await c.get("/content/testbook/a/Photo", headers=h, allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (302, "/content/testbook/a/photosynthesis")
    for encoded in ("a/q%3Fx%26y%23z", "a/with%20space", "a/caf%C3%A9"):
        resp = await c.get(f"/content/testbook/{encoded}", headers=h)
        assert resp.status == 200, encoded
    resp = await c.get("/content/zimfile/", headers=h, allow_redirects=False)
    assert resp.headers["Location"] == "/content/zimfile/A/index"
    assert (await c.get("/content/zimfile/A/index", headers=h)).status == 200
    resp = await c.get("/content/testbook/a/nothing", headers=h)
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"
    assert (await c.get("/content/nobook/x", headers=h)).status == 404


async def test_etag_range_gzip_head(library: Library) -> None:
    await library.show("testbook")
    h = await library.user()
    c = library.content
    resp = await c.get("/content/testbook/video/clip.webm", headers=h)
    body = await resp.read()
    assert (resp.status, resp.content_type, len(body)) == (200, "video/webm", 102400)
    assert "immutable" in resp.headers["Cache-Control"]
    tag = resp.headers["ETag"]
    assert (await c.get("/content/testbook/video/clip.webm", headers={**h, "If-None-Match": tag})).status == 304
    resp = await c.get("/content/testbook/video/clip.webm", headers={**h, "Range": "bytes=1000-1099"})
    assert resp.status == 206
    assert resp.headers["Content-Range"] == "bytes 1000-1099/102400"
    assert await resp.read() == body[1000:1100]
    resp = await c.get("/content/testbook/video/clip.webm", headers={**h, "Range": "bytes=200000-"})
    assert (resp.status, resp.headers["Content-Range"]) == (416, "bytes */102400")
    page = await c.get("/content/testbook/a/photosynthesis", headers={**h, "Accept-Encoding": "gzip"},
                       auto_decompress=False)
    raw = await page.read()
    assert page.headers["Content-Encoding"] == "gzip"
    assert b"photosynthesis" in gzip.decompress(raw)
    assert page.headers["Cache-Control"] == "private, no-cache"
    plain = await c.get("/content/testbook/a/photosynthesis", headers={**h, "Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    head = await c.head("/content/testbook/img/logo.png", headers=h)
    assert (head.status, head.content_type, head.headers["Content-Length"]) == (200, "image/png", str(len(
        await (await c.get("/content/testbook/img/logo.png", headers=h)).read())))


async def test_random(library: Library) -> None:
    await library.show("testbook")
    h = await library.user()
    resp = await library.content.get("/random?content=testbook", headers=h, allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"].startswith("/content/testbook/")
    assert (await library.content.get("/random", headers=h)).status == 400
