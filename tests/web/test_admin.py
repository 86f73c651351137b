"""The staff console in a real Chromium against the live daemon: dashboard, accounts and libraries, with
the permission rules of the API, on desktop and phone, without a console error or an outside request."""

from __future__ import annotations

import re
import sqlite3

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.web.conftest import DESKTOP, PHONE, Site, no_overflow, open_context, shoot, sign_in

pytestmark = pytest.mark.slow


def learner_sees(page: Page, base: str, title: str) -> bool:
    page.goto(f"{base}/library")
    return page.get_by_role("link", name=title, exact=True).count() == 1


def test_staff_console(site: Site, browser: Browser) -> None:
    # The player's own reports are capped by the clock and the (5 s) video's length, so three minutes of
    # watching today are recorded the way the reports would have added them up.
    status, _ = site.api("PUT", f"/api/v1/videos/{site.video_id}/position",
                         {"position_s": 2.0, "watched_s": 2, "completed": False}, who="learner1")
    assert status == 200
    db = sqlite3.connect(site.daemon.data_dir / "appliance.db", timeout=10)
    with db:
        db.execute("INSERT INTO video_watch_activity (user_id, video_id, facility_id, day, seconds)"
                   " VALUES (?, ?, 1, date('now'), 180) ON CONFLICT (user_id, video_id, day)"
                   " DO UPDATE SET seconds = 180", (site.users["learner1"], site.video_id))
    db.close()
    admin_ctx, watch = open_context(browser, site.url)
    page = admin_ctx.new_page()
    sign_in(page, site.url, "admin1", next_path="/admin")
    expect(page).to_have_url(f"{site.url}/admin")
    expect(page.get_by_role("heading", level=1)).to_have_text("Staff console")
    expect(page.get_by_role("heading", name="Health")).to_be_visible()
    expect(page.locator("svg.chart")).to_be_visible()
    expect(page.get_by_role("img", name=re.compile("Minutes of reading and watching"))).to_be_visible()
    expect(page.get_by_text("Watching: 3 minutes")).to_be_visible()  # what the learner watched today
    heights = [float(h or 0) for h in page.locator("svg.chart rect.watching").evaluate_all(
        "bars => bars.map(b => b.getAttribute('height'))")]
    assert len(heights) == 14 and heights[-1] > 0 and sum(heights[:-1]) == 0  # one bar per day, today's drawn
    for link in ("Accounts", "Libraries", "Videos"):
        expect(page.get_by_role("navigation", name="Staff console").get_by_role("link", name=link)).to_be_visible()

    # accounts: create a learner, see the temporary password once, find, edit, reset, deactivate
    page.goto(f"{site.url}/admin/users")
    page.get_by_role("link", name="Create an account").click()
    page.get_by_label("Username").fill("maria.g")
    page.get_by_label("First name").fill("Maria")
    page.get_by_label("Last name").fill("Garcia")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Account created")
    first_password = page.locator("#temporary-password").inner_text()
    assert len(first_password) >= 12 and first_password not in page.url
    page.goto(f"{site.url}/admin/users?q=garc")
    expect(page.get_by_role("link", name="maria.g")).to_be_visible()
    page.get_by_role("link", name="maria.g").click()
    page.get_by_label("First name").fill("María")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status")).to_have_text("Changes saved.")
    expect(page.get_by_label("First name")).to_have_value("María")
    page.get_by_role("button", name="Reset password").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Password reset")
    temporary = page.locator("#temporary-password").inner_text()
    assert temporary != first_password

    # the learner signs in with it, may only change it, then reaches the home page
    learner_ctx, learner_watch = open_context(browser, site.url)
    lp = learner_ctx.new_page()
    lp.goto(f"{site.url}/login")
    lp.get_by_label("Username").fill("maria.g")
    lp.get_by_label("Password").fill(temporary)
    lp.get_by_role("button", name="Sign in").click()
    expect(lp).to_have_url(f"{site.url}/account/password")
    expect(lp.get_by_text("A password needs at least 8 characters")).to_be_visible()  # rules before failing
    expect(lp.get_by_role("navigation", name="Main").get_by_role("link", name="Library")).to_have_count(0)
    lp.goto(f"{site.url}/library")
    expect(lp).to_have_url(f"{site.url}/account/password")  # nothing else works until it is changed
    lp.get_by_label("Current password").fill(temporary)
    lp.get_by_label("New password", exact=True).fill("onlyletters")
    lp.get_by_label("New password again").fill("onlyletters")
    lp.get_by_role("button", name="Change password").click()
    expect(lp.get_by_role("alert")).to_contain_text("at least 8 characters")
    lp.get_by_label("Current password").fill(temporary)
    lp.get_by_label("New password", exact=True).fill("maria own pw 5")
    lp.get_by_label("New password again").fill("maria own pw 5")
    lp.get_by_role("button", name="Change password").click()
    expect(lp.get_by_role("heading", level=1)).to_have_text("Welcome, maria.g")

    # libraries: the real archive becomes visible to the unit (the learner sees it), then hidden again
    page.goto(f"{site.url}/admin/libraries")
    card = page.locator(f"#library-{site.libraries['example']}")
    example_title = card.get_by_role("heading").inner_text()
    assert not learner_sees(lp, site.url, example_title)
    card.get_by_label("Default", exact=True).check()
    card.get_by_label("Featured on the home page of my unit").check()
    card.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Visibility saved.")
    assert learner_sees(lp, site.url, example_title)
    expect(lp.locator(".card", has=lp.get_by_role("link", name=example_title)).get_by_text("Featured")).to_be_visible()
    card = page.locator(f"#library-{site.libraries['example']}")
    card.get_by_label("Default", exact=True).uncheck()
    card.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Visibility saved.")
    assert not learner_sees(lp, site.url, example_title)

    # helpful links: one for the unit shows on the learner's home, marked when it leaves the LAN
    page.goto(f"{site.url}/admin/links")
    form = page.locator("form", has=page.locator("#new-title"))
    form.get_by_label("Title").fill("Open maths course")
    form.get_by_label("Address (URL)").fill("https://maths.example.org/")
    form.get_by_label("Default", exact=True).check()
    form.get_by_role("button", name="Add").click()
    expect(page.get_by_role("status")).to_have_text("Saved.")
    lp.goto(f"{site.url}/")
    card = lp.locator(".link-card", has=lp.get_by_role("link", name="Open maths course"))
    expect(card.get_by_text("Leaves the local network")).to_be_visible()

    # block list: the article disappears from the learner's search
    page.goto(f"{site.url}/admin/libraries/{site.libraries['testbook']}/blocklist")
    page.get_by_label("Blocked articles, one per line").fill("a/photosynthesis")
    page.get_by_role("button", name="Save block list").click()
    expect(page.get_by_role("status")).to_have_text("Block list saved.")
    lp.goto(f"{site.url}/library/search?q=photosynthesis&books=testbook")
    expect(lp.locator("ol.results li").first).to_be_visible()
    expect(lp.locator("ol.results a", has_text=re.compile("^Photosynthesis$"))).to_have_count(0)
    page.goto(f"{site.url}/admin/libraries/{site.libraries['testbook']}/blocklist")
    page.get_by_label("Blocked articles, one per line").fill("")
    page.get_by_role("button", name="Save block list").click()
    page.get_by_role("button", name="Scan the content folder").click()
    expect(page.get_by_role("status")).to_have_text("The content folder was scanned.")

    # roster import: good rows land, a bad row is reported by number, new accounts get a password once
    page.goto(f"{site.url}/admin/users/import")
    page.get_by_label("Roster (CSV with a header line)").fill(
        "username,first_name,last_name\nimp.one,Ana,Uno\nbad name!,Bad,Row\nimp.two,Ben,Dos\n")
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_role("status")).to_have_text("Created 2, updated 0, unchanged 0, refused 1.")
    expect(page.locator("#import-errors tbody tr")).to_have_count(1)
    expect(page.locator("#import-errors tbody tr")).to_contain_text("3")
    expect(page.locator("#import-passwords tbody tr")).to_have_count(2)

    # deactivate: the learner's session ends at once
    page.goto(f"{site.url}/admin/users?q=maria")
    page.get_by_role("link", name="maria.g").click()
    expect(page.get_by_role("heading", name="Sessions")).to_be_visible()
    page.get_by_role("button", name="Deactivate").click()
    expect(page.get_by_role("status")).to_have_text("The account is deactivated and signed out.")
    lp.goto(f"{site.url}/")
    expect(lp).to_have_url(re.compile(r"/login"))
    page.get_by_role("button", name="Reactivate").click()
    expect(page.get_by_role("status")).to_have_text("The account is active again.")

    # the audit log shows who did it, filterable; a new facility appears in the visibility choices
    page.goto(f"{site.url}/admin/audit")
    page.get_by_label("Action").select_option("user_created")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#audit tbody tr", has_text="maria.g")).to_have_count(1)
    expect(page.locator("#audit tbody tr", has_text="maria.g")).to_contain_text("admin1")
    page.goto(f"{site.url}/admin/facilities")
    page.get_by_label("Name").last.fill("Unit B")
    page.get_by_role("button", name="Add").click()
    expect(page.get_by_role("status")).to_have_text("Saved.")
    page.goto(f"{site.url}/admin/libraries")
    expect(page.locator(f"#library-{site.libraries['testbook']}").get_by_label("Unit B")).not_to_be_checked()

    # videos: rename with a saved confirmation (learners see the new title), then delete
    lp.goto(f"{site.url}/login")
    lp.get_by_label("Username").fill("maria.g")
    lp.get_by_label("Password").fill("maria own pw 5")
    lp.get_by_role("button", name="Sign in").click()
    expect(lp.get_by_role("heading", level=1)).to_have_text("Welcome, maria.g")
    page.goto(f"{site.url}/admin/videos")
    row = page.locator(f"#video-{site.video_id}")
    row.get_by_role("button", name="Rename").click()
    row.get_by_label("New title").fill("Cells under a microscope")
    row.get_by_role("button", name="Save").click()
    expect(page.locator("#message")).to_have_text("Saved.")
    expect(page.locator("#message")).to_have_class("flash ok")
    lp.goto(f"{site.url}/videos")
    expect(lp.get_by_role("link", name="Cells under a microscope")).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Delete").click()
    expect(page.locator("#message")).to_have_text("Deleted.")
    expect(row).to_have_count(0)
    lp.goto(f"{site.url}/videos")
    expect(lp.get_by_text("No videos are available yet.")).to_be_visible()

    # reports: a table per report and CSV downloads from the same queries as the API
    page.goto(f"{site.url}/admin/reports")
    expect(page.get_by_role("img", name="Article views per day")).to_be_visible()
    link = page.locator("#r-top_articles").locator("xpath=..").get_by_role("link", name="Download as CSV")
    answer = page.request.get(site.url + (link.get_attribute("href") or ""))
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/csv")

    # every staff page: one h1, no sideways scrolling on a phone, screenshots
    pages = ["/admin", "/admin/users", "/admin/users/new", f"/admin/users/{site.users['learner1']}",
             "/admin/users/import", "/admin/libraries", f"/admin/libraries/{site.libraries['testbook']}/blocklist",
             "/admin/videos", "/admin/audit", "/admin/facilities", "/admin/providers", "/admin/links",
             "/admin/reports"]
    for path in pages:
        name = re.sub(r"/\d+", "-one", path).strip("/").replace("/", "-")
        for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
            page.set_viewport_size(size)
            page.goto(site.url + path)
            assert page.locator("h1").count() == 1, path
            assert no_overflow(page), f"{path} scrolls sideways at {size['width']} px"
            shoot(page, f"staff-{name}-{label}")
    assert watch.external == [] and learner_watch.external == []
    assert watch.errors == [], watch.errors
    admin_ctx.close()
    learner_ctx.close()


def test_same_rules_as_the_api(site: Site, browser: Browser) -> None:
    """A facility admin cannot change a block list or manage a system admin; a learner cannot open the console."""
    if "unitadmin2" not in site.users:
        site.add_user("unitadmin2", "facility_admin")
    context, watch = open_context(browser, site.url)
    page = context.new_page()
    sign_in(page, site.url, "unitadmin2", next_path="/admin/libraries")
    page.goto(f"{site.url}/admin/libraries/{site.libraries['testbook']}/blocklist")
    expect(page.get_by_label("Blocked articles, one per line")).to_have_attribute("readonly", "")
    expect(page.get_by_role("button", name="Save block list")).to_have_count(0)
    expect(page.get_by_role("button", name="Scan the content folder")).to_have_count(0)
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    answer = page.request.post(f"{site.url}/admin/libraries/{site.libraries['testbook']}/blocklist",
                               form={"csrf_token": csrf or "", "patterns": "a/*"}, headers={"Accept": "text/html"})
    assert answer.status == 403  # the server refuses, not only the page
    page.goto(f"{site.url}/admin/users/{site.users['admin1']}")
    expect(page.get_by_text("You may look at this account but not change it")).to_be_visible()
    answer = page.request.post(f"{site.url}/admin/users/{site.users['admin1']}/reset-password",
                               form={"csrf_token": csrf or ""}, headers={"Accept": "text/html"})
    assert answer.status == 403
    answer = page.request.post(f"{site.url}/admin/users/new", form={"username": "x1"},
                               headers={"Accept": "text/html"})
    assert answer.status == 403  # no CSRF token: refused
    context.close()
    learner, _ = open_context(browser, site.url)
    lp = learner.new_page()
    sign_in(lp, site.url, "learner1")
    response = lp.goto(f"{site.url}/admin/users")
    assert response is not None and response.status == 403
    expect(lp.get_by_role("heading", level=1)).to_have_text("You cannot open this page")
    shoot(lp, "error-403-desktop")
    assert watch.external == []
    learner.close()
