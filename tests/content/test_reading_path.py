"""The reading path: hot entries from memory, no SQLite on a reading request, and bounded invalidation."""

import asyncio
import gzip
import time
import traceback
from typing import Any

import pytest

from appliance.auth.sessions import CACHE_TTL_S
from appliance.content.hotcache import HotCache, HotEntry
from appliance.content.origin import PASS_COOKIE
from appliance.db import Database
from appliance.keys import DB
from tests.content.conftest import Library

# What a reading request runs (a session first seen is loaded by SessionById._load in a task of its own).
READING_CODE = {("content/routes_content.py", "entry"), ("content/origin.py", "pass_authenticator"),
                ("content/service.py", "readable"), ("web/middlewares.py", "core_middleware"),
                ("auth/sessions.py", "_load")}


def _pass_only(headers: dict[str, str]) -> dict[str, str]:
    return {"Cookie": f"{PASS_COOKIE}={headers['Cookie'].split(f'{PASS_COOKIE}=')[1]}"}


async def test_no_database_statement_while_reading(library: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once a reader's session is known, reading runs no statement from a request (views are batched)."""
    await library.show("testbook")
    h = _pass_only(await library.user())
    get = library.content.get
    for _ in range(2):  # the first read loads the session and the entries; the second is all memory
        for path in ("a/algebra", "a/photosynthesis", "home", "img/logo.png"):
            assert (await get(f"/content/testbook/{path}", headers=h)).status == 200
    from_requests: list[str] = []

    def spy(name: str, real: Any) -> Any:
        async def call(self: Database, *args: Any, **kwargs: Any) -> Any:
            stack = traceback.extract_stack()
            if any((f.filename.rsplit("appliance/", 1)[-1], f.name) in READING_CODE for f in stack):
                from_requests.append(f"{name}: {args[:1]}")
            return await real(self, *args, **kwargs)
        return call

    for name in ("fetchall", "fetchone", "fetchval", "execute", "executemany"):
        monkeypatch.setattr(Database, name, spy(name, getattr(Database, name)))
    started = time.monotonic()
    reads = 0
    while time.monotonic() - started < CACHE_TTL_S * 2:  # across several session and directory re-checks
        for path in ("a/algebra", "a/photosynthesis", "home", "img/logo.png"):
            resp = await get(f"/content/testbook/{path}", headers=h)
            assert resp.status == 200
            reads += 1
        await asyncio.sleep(0.02)
    assert reads > 50
    assert from_requests == []
    assert library.service.hot.hits >= reads


async def test_hot_entries_keep_headers_and_gzip(library: Library) -> None:
    await library.show("zimfile")
    h = _pass_only(await library.user())
    get = library.content.get
    url = "/content/zimfile/A/A_Fool_for_You"  # a real archive's 5.7 KB page: worth compressing
    first = await get(url, headers={**h, "Accept-Encoding": "identity"})
    body = await first.read()
    assert first.status == 200 and len(body) > 1400 and "Content-Encoding" not in first.headers
    for _ in range(2):  # the gzip body is made on the first request, then served as kept
        zipped = await get(url, headers={**h, "Accept-Encoding": "gzip, deflate"}, auto_decompress=False)
        assert zipped.status == 200
        assert zipped.headers["Content-Encoding"] == "gzip" and zipped.headers["Vary"] == "Accept-Encoding"
        assert gzip.decompress(await zipped.read()) == body
        assert zipped.headers["ETag"].endswith('-gz"') and zipped.headers["Content-Type"] == "text/html"
        assert "frame-ancestors" in zipped.headers["Content-Security-Policy"]
        assert zipped.headers["X-Content-Type-Options"] == "nosniff"
        assert zipped.headers["Cache-Control"] == "private, no-cache"
    held = library.service.hot.get(library.service.directory.by_slug["zimfile"].uuid, "A/A_Fool_for_You")
    assert held is not None and held.packed is not None
    again = await get(url, headers={**h, "If-None-Match": first.headers["ETag"]})
    assert again.status == 304
    part = await get(url, headers={**h, "Range": "bytes=0-9"})
    assert part.status == 206 and await part.read() == body[:10]


async def test_block_list_applies_to_hot_entries(library: Library) -> None:
    await library.show("testbook")
    h = _pass_only(await library.user())
    get = library.content.get
    assert (await get("/content/testbook/a/algebra", headers=h)).status == 200
    assert library.service.hot.get(library.service.directory.by_slug["testbook"].uuid, "a/algebra") is not None
    admin = await library.user(role="system_admin")
    lib = await library.lib_id("testbook")
    resp = await library.client.put(f"/api/v1/libraries/{lib}/blocklist", json={"patterns": ["a/alg*"]},
                                    headers=admin)
    assert resp.status in (200, 204), await resp.text()
    deadline = time.monotonic() + 5
    while (await get("/content/testbook/a/algebra", headers=h)).status == 200:
        assert time.monotonic() < deadline, "a blocked article was still served from the hot cache"
        await asyncio.sleep(0.05)
    assert (await get("/content/testbook/a/algebra", headers=h)).status == 403


def test_hot_cache_is_bounded() -> None:
    cache = HotCache(16 * 10_000)
    for i in range(100):
        cache.put(f"p{i}", HotEntry.make("u", i, f"p{i}", "", "text/html", b"x" * 9000))
    assert cache.used <= cache.max_bytes and 0 < len(cache) < 100
    assert cache.get("u", "p99") is not None and cache.get("u", "p0") is None
    big = HotEntry.make("u", 1000, "big", "", "video/webm", b"x" * 20_000)
    cache.put("big", big)  # over a sixteenth of the budget: never kept
    assert cache.get("u", "big") is None
    held = cache.get("u", "p99")
    assert held is not None and cache.attach_gzip("p99", held, b"z" * 5000)
    assert cache.used <= cache.max_bytes
    assert not cache.attach_gzip("big", big, b"z")  # not held: the caller keeps the gzip elsewhere


async def _until_refused(get: Any, url: str, headers: dict[str, str], bound_s: float) -> float:
    """Seconds until url stops answering 200 (fails past bound_s)."""
    started = time.monotonic()
    while (await get(url, headers=headers)).status == 200:
        assert time.monotonic() - started < bound_s, f"{url} was still served {bound_s} s after the change"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_hiding_a_library_in_another_process_stops_reading(library: Library) -> None:
    """A change written by another process (here: straight to the database) reaches the hot path in time."""
    await library.show("testbook")
    h = _pass_only(await library.user())
    url = "/content/testbook/a/algebra"
    for _ in range(3):
        assert (await library.content.get(url, headers=h)).status == 200
    await library.client.app[DB].execute("DELETE FROM library_visibility WHERE library_id = ?",
                                         (await library.lib_id("testbook"),))
    bound = library.service.settings.refresh_interval_s + 1.0
    await _until_refused(library.content.get, url, h, bound)
    assert (await library.content.get(url, headers=h)).status == 404


async def test_a_session_ended_in_another_process_stops_reading(library: Library) -> None:
    """Sign-out written by another process: the pass stops reading within CACHE_TTL_S (no request waits)."""
    await library.show("testbook")
    full = await library.user()
    h = _pass_only(full)
    url = "/content/testbook/a/algebra"
    for _ in range(3):
        assert (await library.content.get(url, headers=h)).status == 200
    uid = library.user_ids[full["Cookie"]]
    await library.client.app[DB].execute("UPDATE sessions SET state = 'logged_out' WHERE user_id = ?", (uid,))
    await _until_refused(library.content.get, url, h, CACHE_TTL_S + 1.0)
