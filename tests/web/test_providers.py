"""Staff add learning systems in a real browser and read the connection test's answer as a sentence.

The learning system is the faithful fake Canvas (tests/fakes/canvas.py) on a loopback port, which the test
egress policy allows; the daemon probes it for real.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.fakes.canvas import FakeCanvas
from tests.web.conftest import DESKTOP, PHONE, Site, no_overflow, open_context, shoot, sign_in


class Background:
    """An asyncio loop in a thread, so the sync browser test can run an aiohttp fake beside it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-canvas", daemon=True)
        self.thread.start()

    def run(self, coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)  # type: ignore[arg-type]

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def canvas() -> Iterator[FakeCanvas]:
    """The fake Canvas, listening on 127.0.0.1 with the token `canvas-token`."""
    bg = Background()
    fake = FakeCanvas()
    bg.run(fake.start())
    try:
        yield fake
    finally:
        bg.run(fake.stop())
        bg.close()


def add(page: Page, kind: str, name: str, base_url: str, token: str) -> None:
    """Fill and send the "add a learning system" form."""
    form = page.locator("#add-provider")
    form.get_by_label("Kind").select_option(kind)
    form.get_by_label("Name", exact=True).fill(name)
    form.get_by_label("Address (base URL)").fill(base_url)
    form.get_by_label("Account id (Canvas root account; optional)").fill("1")
    form.locator(f"fieldset[data-kind='{kind}']").get_by_label("API access token").fill(token)
    form.get_by_role("button", name="Add and test the connection").click()
    page.wait_for_load_state()


def test_admin_adds_providers_and_reads_the_test(site: Site, browser: Browser, canvas: FakeCanvas) -> None:
    context, watch = open_context(browser, site.url)
    page = context.new_page()
    sign_in(page, site.url, "admin1", next_path="/admin/providers")
    expect(page.get_by_role("heading", level=1)).to_have_text("Learning systems")

    # with JavaScript on, only the chosen kind's credential fields show
    form = page.locator("#add-provider")
    form.get_by_label("Kind").select_option("moodle")
    expect(form.locator("fieldset[data-kind='moodle']")).to_be_visible()
    expect(form.locator("fieldset[data-kind='canvas_oss']")).to_be_hidden()
    form.get_by_label("Kind").select_option("brightspace_oauth")
    expect(form.get_by_label("Refresh token")).to_be_visible()
    expect(form.get_by_label("App key")).to_be_hidden()

    add(page, "canvas_oss", "School Canvas", canvas.base_url, "canvas-token")
    result = page.locator("#test-result")
    expect(result).to_contain_text("Connection test of “School Canvas”")
    expect(result).to_contain_text("reachable and accepted the credentials")
    assert result.get_attribute("data-reason") == ""
    expect(page.locator("#providers")).to_contain_text("School Canvas")

    add(page, "canvas_oss", "Wrong token", canvas.base_url, "not-the-token")
    expect(result).to_contain_text("Connection test of “Wrong token”")
    expect(result).to_contain_text("refused the credentials")
    assert result.get_attribute("data-reason") == "auth_failed"
    assert "auth_failed" not in (result.text_content() or "")  # a sentence for people, not the API's code

    # an address outside the allowed networks: the policy is named, nothing is sent there
    add(page, "canvas_oss", "Outside", "http://192.0.2.10", "canvas-token")
    expect(result).to_contain_text("not in the allowed networks")
    assert result.get_attribute("data-reason") == "refused_by_policy"

    # bad input: a clear error, the form keeps what was typed, nothing is added
    add(page, "canvas_oss", "No token", canvas.base_url, "")
    expect(page.get_by_role("alert")).to_contain_text("Canvas needs")
    expect(page.locator("#add-provider").get_by_label("Name", exact=True)).to_have_value("No token")
    status, listed = site.api("GET", "/api/v1/providers")
    assert status == 200 and "No token" not in [p["name"] for p in listed["data"]]
    ids = {p["name"]: p["id"] for p in listed["data"]}

    # test again from the list, sync now, disable and enable
    row = page.locator("#providers tr", has_text="Wrong token")
    row.get_by_role("button", name="Test connection").click()
    expect(page.locator("#test-result")).to_contain_text("refused the credentials")
    page.locator("#providers tr", has_text="School Canvas").get_by_role("button", name="Sync now").click()
    expect(page.get_by_role("status").first).to_contain_text("A sync run is queued.")
    page.locator("#providers tr", has_text="Wrong token").get_by_role("button", name="Disable").click()
    expect(page.locator("#providers tr", has_text="Wrong token").get_by_role("button", name="Enable")).to_be_visible()
    assert site.api("GET", f"/api/v1/providers/{ids['Wrong token']}")[1]["data"]["state"] == "disabled"
    wrong = page.locator("#providers tr", has_text="Wrong token")
    expect(wrong.get_by_role("button", name="Sync now")).to_have_count(0)

    # an upstream user nobody matched is linked to a local account by username
    learner = site.add_user("linkme", "learner")
    db = sqlite3.connect(site.daemon.data_dir / "appliance.db")
    with db:
        db.execute("INSERT INTO provider_user_mappings (provider_id, external_user_id, external_login_id,"
                   " external_name) VALUES (?, 'ext-77', 'lm@school', 'Lin Mei')", (ids["Wrong token"],))
    db.close()
    page.goto(f"{site.url}/admin/providers")
    table = page.locator("table.unmatched")
    expect(table).to_contain_text("Lin Mei")
    table.get_by_label("Local username").fill("nobody-here")
    table.get_by_role("button", name="Link").click()
    expect(page.get_by_role("alert")).to_contain_text("no local account with that username")
    page.locator("table.unmatched").get_by_label("Local username").fill("LinkMe")
    page.locator("table.unmatched").get_by_role("button", name="Link").click()
    expect(page.get_by_role("status").first).to_contain_text("Linked to the local account.")
    expect(page.locator("table.unmatched")).to_have_count(0)
    status, unmatched = site.api("GET", f"/api/v1/providers/{ids['Wrong token']}/unmatched-users")
    assert status == 200 and unmatched["data"] == []
    db = sqlite3.connect(site.daemon.data_dir / "appliance.db")
    assert db.execute("SELECT user_id, matched_by FROM provider_user_mappings WHERE external_user_id = 'ext-77'"
                      ).fetchone() == (learner, "admin")
    db.close()

    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.goto(f"{site.url}/admin/providers")
        assert no_overflow(page), f"/admin/providers scrolls sideways at {size['width']} px"
        shoot(page, f"staff-admin-providers-{label}")
    assert watch.external == []
    # the two refused forms came back with status 400 (the browser logs that); nothing else went wrong
    assert [e for e in watch.errors if "status of 400" not in e] == []
    assert len(watch.errors) == 2
    context.close()


def test_provider_page_keeps_the_api_rules(site: Site, browser: Browser, canvas: FakeCanvas) -> None:
    """A department admin may not add (the address decides where tokens go); a facility admin may not disable."""
    site.add_user("dept1", "department_admin")
    site.add_user("fac1", "facility_admin")
    context, _watch = open_context(browser, site.url)
    page = context.new_page()
    sign_in(page, site.url, "dept1", next_path="/admin/providers")
    expect(page.get_by_role("heading", level=1)).to_have_text("Learning systems")
    expect(page.locator("#add-provider")).to_have_count(0)
    # forging the form does not help: the server refuses it as the API does
    answer = page.evaluate("""async (base) => {
        const csrf = document.querySelector("input[name=csrf_token]").value;
        const body = new URLSearchParams({csrf_token: csrf, kind: "canvas_oss", name: "Forged",
                                          base_url: base, "canvas_oss.access_token": "canvas-token"});
        const r = await fetch("/admin/providers", {method: "POST", body});
        return r.status; }""", canvas.base_url)
    assert answer == 403
    assert "Forged" not in [p["name"] for p in site.api("GET", "/api/v1/providers")[1]["data"]]
    context.close()

    context, _watch = open_context(browser, site.url)
    page = context.new_page()
    sign_in(page, site.url, "fac1", next_path="/admin/providers")
    expect(page.get_by_role("heading", level=1)).to_have_text("Learning systems")
    expect(page.get_by_role("button", name=re.compile("^Disable"))).to_have_count(0)
    context.close()
