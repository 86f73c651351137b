"""A real browser (Debian chromium via Playwright): sign in, open a book, read, and the reading beacon lands."""

import asyncio
from typing import Any

import pytest
from playwright.async_api import async_playwright

from appliance.keys import DB
from tests.content.conftest import Library

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.mark.slow
async def test_reader_beacon(library: Library, make_user: Any) -> None:
    c = library.client
    await library.show("testbook")
    user = await make_user(c, username="reader1", password="correct horse 42")
    base = str(c.make_url("/")).rstrip("/")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            external: list[str] = []
            page.on("request", lambda r: None if r.url.startswith(base) else external.append(r.url))
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            resp = await page.request.post(f"{base}/api/v1/auth/login",
                                           data={"username": user["username"], "password": user["password"]})
            assert resp.status == 200
            await page.goto(f"{base}/library")
            await page.get_by_role("link", name="Test Book").click()
            await page.wait_for_url(f"{base}/library/read/testbook/**")
            frame = page.frame_locator("#page")
            await frame.get_by_role("heading", name="Home").wait_for()
            await frame.get_by_role("link", name="photosynthesis").click()
            await page.wait_for_url(f"{base}/library/read/testbook/a/photosynthesis")
            await frame.get_by_role("heading", name="Photosynthesis").wait_for()
            for _ in range(100):  # the page's CSP forbids eval, so poll instead of wait_for_function
                if await page.evaluate("() => window.readerState().seconds") >= 3:
                    break
                await asyncio.sleep(0.1)
            await page.goto(f"{base}/library")  # pagehide sends what is left
            for _ in range(100):
                await library.service.recorder.flush()
                seconds = await c.app[DB].fetchval(
                    "SELECT seconds FROM reading_time WHERE user_id = ? AND path = 'a/photosynthesis'",
                    (user["id"],))
                if seconds:
                    break
                await asyncio.sleep(0.1)
            assert seconds is not None
            assert 3 <= seconds <= 30
            views = [r["path"] for r in await c.app[DB].fetchall(
                "SELECT path FROM article_views WHERE user_id = ? ORDER BY id", (user["id"],))]
            assert views == ["home", "a/photosynthesis"]
            assert external == []  # everything is local: no CDN, no call home
            await page.goto(f"{base}/library/search?q=photosynthesis")
            await page.get_by_role("link", name="Photosynthesis").first.wait_for()
            assert "results" in await page.locator("#status").inner_text()
            assert errors == []
        finally:
            await browser.close()
