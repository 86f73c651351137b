"""A real browser (Debian chromium via Playwright) signs in with a temporary password, must change it,
reaches the start page, and signs out; nothing is fetched from outside the appliance."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import async_playwright

from appliance.keys import DB
from tests.conftest import MakeUser

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.mark.slow
async def test_sign_in_change_temporary_password_and_sign_out(client: TestClient, make_user: MakeUser) -> None:
    admin = await make_user(client, role="facility_admin", password="temporary pw 1")
    await client.app[DB].execute("UPDATE users SET must_change_password = 1 WHERE id = ?", (admin["id"],))
    base = str(client.make_url("/")).rstrip("/")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            external: list[str] = []
            page.on("request", lambda r: None if r.url.startswith(base) else external.append(r.url))
            await page.goto(f"{base}/")
            await page.wait_for_url(f"{base}/login")
            await page.get_by_label("Username").fill(admin["username"])
            await page.get_by_label("Password").fill("wrong password 9")
            await page.get_by_role("button", name="Sign in").click()
            await page.get_by_role("alert").wait_for()
            assert (await page.get_by_role("alert").inner_text()) == (
                "The username or password is not right. Check them and try again.")

            await page.get_by_label("Password").fill(admin["password"])
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(f"{base}/account/password")
            await page.get_by_text("temporary password").wait_for()
            await page.get_by_label("Current password").fill(admin["password"])
            await page.get_by_label("New password", exact=True).fill("my own secret 7")
            await page.get_by_label("New password again").fill("my own secret 7")
            await page.get_by_role("button", name="Change password").click()
            await page.wait_for_url(f"{base}/")
            await page.get_by_role("heading", name=f"Welcome, {admin['username']}").wait_for()
            assert await page.get_by_role("link", name="Staff console", exact=True).count() == 1

            await page.get_by_role("button", name="Sign out").click()
            await page.wait_for_url(f"{base}/login")
            flag = await client.app[DB].fetchval("SELECT must_change_password FROM users WHERE id = ?", (admin["id"],))
            assert flag == 0
            assert external == []
        finally:
            await browser.close()
