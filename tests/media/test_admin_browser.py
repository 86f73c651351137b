"""A facility admin drives /admin/videos in a real browser (Debian chromium via Playwright), live over SSE."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from playwright.async_api import Page, async_playwright, expect

from appliance.keys import DB
from tests.media.conftest import MediaEnv
from tests.media.realservers import VideoSite
from tests.media.test_browser import CHROMIUM_ARGS

# Records what the page shows: every change of a row's state or progress bar, and of the live-updates marker.
WATCH = """() => {
  window.seen = [];
  window.liveStates = [];
  const tbody = document.querySelector('#videos tbody'), live = document.getElementById('live');
  const last = {};
  new MutationObserver(() => tbody.querySelectorAll('tr').forEach(tr => {
    const bar = tr.querySelector('td.progress progress');
    const now = [tr.querySelector('td.state').textContent, bar ? bar.value : null];
    if (JSON.stringify(now) !== JSON.stringify(last[tr.id])) { last[tr.id] = now; window.seen.push([tr.id, ...now]); }
  })).observe(tbody, {subtree: true, childList: true, characterData: true});
  new MutationObserver(() => window.liveStates.push(live.dataset.state))
    .observe(live, {attributes: true, attributeFilter: ['data-state']});
}"""


async def shown(page: Page, row_id: str) -> list[tuple[str, float | None]]:
    """(state, percent) as the page showed them for one row, in order."""
    return [(s, p) for r, s, p in await page.evaluate("() => window.seen") if r == row_id]


def states(seen: list[tuple[str, float | None]]) -> list[str]:
    """The states shown, repeats collapsed."""
    return [s for s, _ in itertools.groupby(s for s, _ in seen)]


@pytest.mark.slow
async def test_admin_adds_watches_shares_and_retries(media_env_factory: Any, slow_video_site: VideoSite) -> None:
    env: MediaEnv = await media_env_factory("disk", max_attempts=1)
    site = slow_video_site
    admin = env.users["admin"]
    facility = await env.client.app[DB].fetchval("SELECT name FROM facilities WHERE id = 1")
    base = str(env.client.make_url("/")).rstrip("/")
    feed = await env.client.get("/api/v1/videos/events", headers=env.h("admin"))
    assert await feed.content.readline() == b"retry: 2000\n"  # EventSource reconnects after this many ms
    feed.close()
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            external: list[str] = []
            errors: list[str] = []
            feeds: list[str] = []
            page.on("request", lambda r: None if r.url.startswith(base + "/") else external.append(r.url))
            page.on("request", lambda r: feeds.append(r.url) if r.url.endswith("/api/v1/videos/events") else None)
            page.on("console", lambda m: errors.append(f"{m.text} {m.location['url']}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))

            # 1. not signed in: the page sends the browser to the login form, which comes back with a cookie
            await page.goto(f"{base}/admin/videos")
            assert page.url.startswith(f"{base}/login")
            await page.get_by_label("Username").fill(admin["username"])
            await page.get_by_label("Password").fill(admin["password"])
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(f"{base}/admin/videos")
            assert [c["name"] for c in await page.context.cookies() if c["httpOnly"]]  # the session cookie
            live = page.locator("#live")
            await expect(live).to_have_attribute("data-state", "live")  # the cookie reached the SSE feed
            await page.evaluate(WATCH)

            # 2. add a URL with the page's own form
            await page.get_by_label("Video or playlist URLs, one per line").fill(site.url("slow.html"))
            await page.get_by_role("button", name="Download").click()
            await expect(page.locator("#message")).to_have_text("Queued 1 video(s).")
            row = page.locator("#videos tbody tr", has_text="slow.html")
            row_id = await row.get_attribute("id", timeout=5000)
            assert row_id is not None
            vid = int(row_id.removeprefix("video-"))

            # 3. the row moves live, without a reload: pending → processing with a growing percentage → available
            await expect(row.locator("td.progress")).to_contain_text("%", timeout=15000)
            await expect(row.locator("td.progress")).to_contain_text("ETA")
            await expect(row.locator("td.state")).to_have_text("available", timeout=30000)
            await expect(row.locator("td.title")).to_contain_text("Slow lecture")
            await expect(row.get_by_role("link", name="Play")).to_have_attribute("href", f"/videos/{vid}")
            seen = await shown(page, row_id)
            assert states(seen) == ["pending", "processing", "available"], seen
            percents = [pct for s, pct in seen if s == "processing" and pct is not None]
            assert percents == sorted(percents), percents
            assert len(set(percents)) >= 3, percents  # several steps of a download that takes seconds
            assert 0 <= percents[0] < 50 and percents[-1] > 50, percents

            # 4. share it with the facility: the learner there can then open it
            assert (await env.client.get(f"/videos/{vid}", headers=env.h("learner"))).status == 404
            await expect(row.locator("td.visibility")).to_contain_text("Hidden from learners")
            await row.get_by_label(facility).check()
            await expect(row.locator("td.visibility")).not_to_contain_text("Hidden from learners")
            await expect(row.get_by_label(facility)).to_be_enabled()
            assert (await env.client.get(f"/videos/{vid}", headers=env.h("learner"))).status == 200

            # the server drops the stream (a reader too slow for its queue): the browser reconnects by itself
            for _ in range(300):  # more than its queue holds, synchronously, so the stream cannot drain in between
                env.svc.hub.deliver({"type": "deleted", "video_id": 10**9})
            await page.wait_for_function("() => window.liveStates.includes('reconnecting')", timeout=10000)
            await expect(live).to_have_attribute("data-state", "live", timeout=10000)
            assert len(feeds) == 2, feeds
            await expect(row.locator("td.state")).to_have_text("available")  # the catch-up reload kept the rows

            # 5. a URL that 404s: an error row with the reason, then the page's Retry once the page exists
            await page.get_by_label("Video or playlist URLs, one per line").fill(site.url("missing.html"))
            await page.get_by_role("button", name="Download").click()
            bad = page.locator("#videos tbody tr", has_text="missing.html")
            await expect(bad.locator("td.state")).to_have_text("error", timeout=30000)  # over the new stream
            await expect(bad.locator("td.error")).to_contain_text("404")
            (site.root / "missing.html").write_text((site.root / "lecture.html").read_text())
            await bad.get_by_role("button", name="Retry").click()
            await expect(bad.locator("td.state")).to_have_text("available", timeout=30000)
            await expect(bad.locator("td.error")).to_have_text("")
            bad_id = await bad.get_attribute("id")
            assert bad_id is not None
            assert states(await shown(page, bad_id)) == ["pending", "processing", "error", "pending", "processing",
                                                         "available"]

            # what the page lists after a reload matches: visibility included
            await page.reload()
            await expect(page.locator(f"#{row_id}").get_by_label(facility)).to_be_checked()
            await expect(page.locator(f"#{bad_id}").get_by_label(facility)).not_to_be_checked()

            # 6. offline: nothing but the appliance, and nothing went wrong in the page
            assert external == []
            assert errors == []
        finally:
            await browser.close()
