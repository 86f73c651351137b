"""A real browser (Debian chromium via Playwright): read a book through the content origin, and make sure a
malicious archive's scripts can't act as the person reading it."""

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Frame, Page, async_playwright

from appliance.keys import DB
from tests.content.conftest import Library, sign_in
from tests.content.zimbuilder import ZimSpec, build_zim

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


async def _signed_in_page(browser: Any, base: str, user: dict[str, Any]) -> Page:
    page = await browser.new_page()
    resp = await page.request.post(f"{base}/api/v1/auth/login",
                                   data={"username": user["username"], "password": user["password"]})
    assert resp.status == 200
    return page


@pytest.mark.slow
async def test_reader_beacon(library: Library, make_user: Any) -> None:
    c = library.client
    await library.show("testbook")
    user = await make_user(c, username="reader1", password="correct horse 42")
    base = str(c.make_url("/")).rstrip("/")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = await _signed_in_page(browser, base, user)
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            await page.goto(f"{base}/library")
            await page.get_by_role("link", name="Test Book").click()
            await page.wait_for_url(f"{base}/library/read/testbook/**")
            # The reader frames the content origin's frame page, which hosts the article.
            frame = page.frame_locator("#page").frame_locator("#article")
            await frame.get_by_role("heading", name="Home").wait_for()
            content = await page.evaluate("() => window.readerState().origin")
            assert content.startswith("http://127.0.0.1:") and content != base
            await frame.get_by_role("link", name="photosynthesis").click()
            # The frame told the reader (postMessage, exact origin) which article shows now.
            await page.wait_for_url(f"{base}/library/read/testbook/a/photosynthesis")
            await frame.get_by_role("heading", name="Photosynthesis").wait_for()
            assert await page.title() == "Photosynthesis"
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
            # Everything is local (no CDN, no call home); archive bytes come only from the content origin.
            assert [u for u in requests if not u.startswith((base, content))] == []
            assert [u for u in requests if u.startswith(f"{base}/content/")] == []
            await page.goto(f"{base}/library/search?q=photosynthesis")
            await page.get_by_role("link", name="Photosynthesis").first.click()
            await page.wait_for_url(f"{base}/library/read/testbook/a/photosynthesis")
            await frame.get_by_role("heading", name="Photosynthesis").wait_for()
            await page.get_by_role("link", name="Book home").click()
            await frame.get_by_role("heading", name="Home").wait_for()
            await page.wait_for_url(f"{base}/library/read/testbook/home")
            assert errors == []
        finally:
            await browser.close()


# What a hostile archive tries, with the reader's browser: read the CSRF token, then use it to make itself
# a system admin, mint a ten-year token, change a facility and reset someone's password. It tries both
# its own origin (where the app used to serve it) and the app origin by its full address, and the parent
# window (the reader page), and records each outcome so the test can tell it really ran.
EVIL_SCRIPT = """
(async function () {
  var APP = %(app)s, VICTIM = %(victim)d, lines = [];
  function note(s) { lines.push(s); document.getElementById("log").textContent = lines.join("\\n"); }
  note("ran");
  async function attack(label, base, fetcher) {
    var csrf = null;
    try {
      var r = await fetcher(base + "/api/v1/auth/me", {credentials: "include"});
      note("me " + label + " " + r.status);
      if (r.ok) { csrf = (await r.json()).data.csrf_token; }
    } catch (e) { note("me " + label + " blocked"); }
    var headers = {"Content-Type": "application/json"};
    if (csrf) headers["X-CSRF-Token"] = csrf;
    var calls = [
      ["POST", "/api/v1/users", {username: "evil_" + label, password: "evil horse battery 42", role: "system_admin"}],
      ["POST", "/api/v1/tokens", {name: "evil " + label, role: "system_admin", expires_in_days: 3650}],
      ["PATCH", "/api/v1/facilities/1", {name: "Pwned " + label}],
      ["POST", "/api/v1/users/" + VICTIM + "/reset-password", {}]
    ];
    for (var i = 0; i < calls.length; i++) {
      var c = calls[i];
      try {
        var resp = await fetcher(base + c[1], {method: c[0], credentials: "include", headers: headers,
                                               body: JSON.stringify(c[2])});
        note(c[0] + " " + label + c[1] + " " + resp.status);
      } catch (e) { note(c[0] + " " + label + c[1] + " blocked"); }
    }
    try {  // a "simple" request needs no preflight: it reaches a server even when the answer is unreadable
      await fetcher(base + "/api/v1/users", {method: "POST", mode: "no-cors", credentials: "include",
        headers: {"Content-Type": "text/plain"},
        body: JSON.stringify({username: "evil_simple_" + label, password: "evil horse battery 42",
                              role: "system_admin"})});
      note("simple " + label + " sent");
    } catch (e) { note("simple " + label + " blocked"); }
  }
  await attack("here", "", window.fetch.bind(window));
  await attack("app", APP, window.fetch.bind(window));
  try {
    var reader = window.top.document;  // the reader page, on the app origin
    note("top readable " + reader.title);
    await attack("top", "", window.top.fetch.bind(window.top));
  } catch (e) { note("top blocked"); }
  try {
    var form = document.createElement("form");
    form.method = "POST"; form.action = APP + "/api/v1/auth/logout"; form.target = "sink";
    var sink = document.createElement("iframe"); sink.name = "sink"; document.body.appendChild(sink);
    document.body.appendChild(form); form.submit(); note("form sent");
  } catch (e) { note("form blocked"); }
  note("done");
})();
"""


def evil_archive(path: Path, app_origin: str, victim_id: int) -> Path:
    """A ZIM whose main page runs EVIL_SCRIPT (inline, as archive scripts usually are)."""
    import json

    script = EVIL_SCRIPT % {"app": json.dumps(app_origin), "victim": victim_id}
    body = f"<p>Nothing to see.</p><pre id='log'></pre><script>{script}</script>"
    spec = ZimSpec(name="evil", title="Evil Book", index=False, illustration=False,
                   articles={"home": ("Evil", body)})
    return build_zim(path, spec)


async def _log_of(page: Page) -> str:
    """The attack log, from whichever frame shows the evil page (the layout differs between versions)."""
    frames: list[Frame] = page.frames
    for frame in frames:
        try:
            text = await frame.locator("#log").text_content(timeout=200)
        except Exception:  # noqa: S112 - a frame without the log, or gone
            continue
        if text:
            return text
    return ""


async def _state(c: Any, victim_id: int) -> dict[str, Any]:
    db = c.app[DB]
    return {
        "users": [r["username"] for r in await db.fetchall("SELECT username FROM users ORDER BY id")],
        "tokens": await db.fetchval("SELECT count(*) FROM api_tokens"),
        "facility": await db.fetchval("SELECT name FROM facilities WHERE id = 1"),
        "victim": dict(await db.fetchone("SELECT password_hash, must_change_password FROM users WHERE id = ?",
                                         (victim_id,))),
        "sessions": await db.fetchval("SELECT count(*) FROM sessions WHERE state = 'active'"),
    }


@pytest.mark.slow
async def test_malicious_archive_cannot_act_as_its_reader(library: Library, make_user: Any,
                                                          content_config: Any, tmp_path: Path) -> None:
    c = library.client
    base = str(c.make_url("/")).rstrip("/")
    admin = await make_user(c, role="system_admin", username="root1", password="correct horse 42")
    victim = await make_user(c, username="victim1", password="correct horse 42")
    root = library.service.zim_root
    evil_archive(Path(str(root)) / "evil.zim", base, victim["id"])
    await library.service.rescan()
    await library.show("evil")
    await library.show("testbook")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = await _signed_in_page(browser, base, admin)
            before = await _state(c, victim["id"])
            await page.goto(f"{base}/library/read/evil/")
            log = ""
            for _ in range(150):
                log = await _log_of(page)
                if log.endswith("done"):
                    break
                await asyncio.sleep(0.1)
            assert log.startswith("ran") and log.endswith("done"), log  # the script really ran, to the end
            await asyncio.sleep(1.0)  # let the form post and no-cors requests land, if they could
            after = await _state(c, victim["id"])
            # No API call of the archive succeeded: no new user, no token, no setting changed, no reset...
            assert after == before, log
            answered = [line for line in log.splitlines() if re.search(r" 2\d\d$", line)]
            assert answered == [], log
            assert "top readable" not in log
            # ... and the admin's own session still works (the archive could not sign them out either).
            me = await page.request.get(f"{base}/api/v1/auth/me")
            assert me.status == 200

            # Meanwhile a normal archive still reads, follows links and counts reading time.
            await page.goto(f"{base}/library/read/testbook/")
            frame = page.frame_locator("#page").frame_locator("#article")
            await frame.get_by_role("link", name="photosynthesis").click()
            await page.wait_for_url(f"{base}/library/read/testbook/a/photosynthesis")
            for _ in range(100):
                if await page.evaluate("() => window.readerState().seconds") >= 2:
                    break
                await asyncio.sleep(0.1)
            await page.goto(f"{base}/library")
            for _ in range(100):
                await library.service.recorder.flush()
                seconds = await c.app[DB].fetchval(
                    "SELECT seconds FROM reading_time WHERE user_id = ? AND path = 'a/photosynthesis'",
                    (admin["id"],))
                if seconds:
                    break
                await asyncio.sleep(0.1)
            assert seconds and seconds >= 2
        finally:
            await browser.close()
    # The attack's requests are well-formed: sent by the admin's own page they would all have worked.
    h = await sign_in(c, "root1", "correct horse 42")
    made = await c.post("/api/v1/users", json={"username": "evil_control", "password": "evil horse battery 42",
                                               "role": "system_admin"}, headers=h)
    assert made.status == 201, await made.text()
    token = await c.post("/api/v1/tokens", json={"name": "control", "role": "system_admin",
                                                 "expires_in_days": 3650}, headers=h)
    assert token.status == 201, await token.text()
    reset = await c.post(f"/api/v1/users/{victim['id']}/reset-password", json={}, headers=h)
    assert reset.status == 200, await reset.text()
