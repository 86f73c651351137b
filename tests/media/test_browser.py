"""A real browser (Debian chromium via Playwright) plays a cached video; the resume position is saved and used."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from playwright.async_api import async_playwright

from appliance.keys import DB
from tests.media.test_streaming import upload

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic", "--autoplay-policy=no-user-gesture-required"]


@pytest.mark.slow
async def test_player_saves_and_resumes_position(media_env_factory: Any, sample_bytes: bytes) -> None:
    env = await media_env_factory("disk")
    resp = await upload(env, sample_bytes, filename="Fractions.mp4")
    vid = (await resp.json())["data"]["id"]
    await env.client.put(f"/api/v1/videos/{vid}/visibility", json={"facility_ids": [1]}, headers=env.h("admin"))
    learner = env.users["learner"]
    base = str(env.client.make_url("/")).rstrip("/")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            external: list[str] = []
            page.on("request", lambda r: None if r.url.startswith(base) else external.append(r.url))
            resp = await page.request.post(f"{base}/api/v1/auth/login",
                                           data={"username": learner["username"], "password": learner["password"]})
            assert resp.status == 200
            await page.goto(f"{base}/videos/{vid}")
            await page.get_by_role("heading", name="Fractions").wait_for()
            await page.evaluate("() => { const v = document.getElementById('player'); v.muted = true; v.play(); }")
            for _ in range(150):
                if await page.evaluate("() => document.getElementById('player').currentTime") >= 2.0:
                    break
                await asyncio.sleep(0.1)
            await page.evaluate("() => document.getElementById('player').pause()")  # pause reports the position
            saved = None
            for _ in range(100):
                saved = await env.client.app[DB].fetchone(
                    "SELECT position_s FROM video_positions WHERE user_id = ? AND video_id = ?", (learner["id"], vid))
                if saved is not None:
                    break
                await asyncio.sleep(0.1)
            assert saved is not None
            assert 2.0 <= saved["position_s"] <= 5.0
            watched = await env.client.app[DB].fetchval(
                "SELECT seconds FROM video_watch_activity WHERE user_id = ? AND video_id = ?", (learner["id"], vid))
            assert watched is not None
            assert 1.0 <= watched <= 6.0
            # coming back later: the player starts where the learner stopped
            await page.goto(f"{base}/videos/{vid}")
            await page.locator("#resume-note").wait_for()
            position = await page.evaluate("() => document.getElementById('player').currentTime")
            assert position == pytest.approx(saved["position_s"], abs=0.5)
            assert external == []  # all assets are local
        finally:
            await browser.close()
