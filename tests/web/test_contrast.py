"""WCAG AA contrast, measured in the real browser on every main page (learner and staff, light theme): each
visible text's colour against the background it is really drawn on must reach 4.5:1 (3:1 for large text)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page

from tests.web.conftest import Site, open_context, sign_in

pytestmark = pytest.mark.slow

# Runs in the page: every element with its own text, its colour (with opacity) over the first opaque
# background up its ancestors (translucent ones blended in), and the ratio WCAG 2.x defines.
CONTRAST = """() => {
  function rgba(text) {
    const m = text.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return [0, 0, 0, 0];
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  }
  function over(top, bottom) {             // top (with alpha) composited over an opaque bottom
    const a = top[3];
    return [0, 1, 2].map(i => top[i] * a + bottom[i] * (1 - a)).concat([1]);
  }
  function background(el) {
    const layers = [];
    for (let e = el; e && e.nodeType === 1; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    let colour = [255, 255, 255, 1];       // the canvas under everything
    for (let i = layers.length - 1; i >= 0; i--) colour = over(layers[i], colour);
    return colour;
  }
  function luminance(c) {
    const [r, g, b] = c.slice(0, 3).map(v => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  }
  const out = [];
  let checked = 0;
  for (const el of document.querySelectorAll("body *")) {
    if (["SCRIPT", "STYLE", "OPTION", "TITLE", "NOSCRIPT"].includes(el.tagName)) continue;
    const own = Array.from(el.childNodes).some(n => n.nodeType === 3 && n.textContent.trim());
    const field = (el.tagName === "INPUT" && !["hidden", "checkbox", "radio", "file"].includes(el.type) && el.value)
                  || (el.tagName === "TEXTAREA" && el.value);
    if (!own && !field) continue;
    const s = getComputedStyle(el), r = el.getBoundingClientRect();
    if (s.visibility !== "visible" || s.display === "none" || r.width <= 1 || r.height <= 1) continue;
    if (el.closest("[hidden], [aria-hidden=true]") || el.disabled) continue;
    checked += 1;
    let opacity = 1;
    for (let e = el; e && e.nodeType === 1; e = e.parentElement) opacity *= Number(getComputedStyle(e).opacity);
    const bg = background(el), fg = rgba(s.color);
    fg[3] *= opacity;
    const seen = over(fg, bg);
    const l1 = luminance(seen), l2 = luminance(bg);
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    const size = parseFloat(s.fontSize), bold = Number(s.fontWeight) >= 700;
    const large = size >= 24 || (bold && size >= 18.66);
    const need = large ? 3 : 4.5;
    if (ratio < need) {
      const text = (field ? el.value : el.textContent).trim().replace(/\\s+/g, " ").slice(0, 40);
      out.push(`${el.tagName.toLowerCase()}${el.className ? "." + String(el.className).split(" ").join(".") : ""}` +
               ` "${text}": ${ratio.toFixed(2)} < ${need} (${s.color} on rgb(${bg.slice(0, 3).map(Math.round)}))`);
    }
  }
  return {checked: checked, failures: out};
}"""

LEARNER = ["/", "/library", "/library/search?q=photosynthesis", "/library/search?q=zzzqqq", "/videos",
           "/account", "/account/password", "/no/such/page", "/library/read/testbook/"]
STAFF = ["/admin", "/admin/users", "/admin/users/new", "/admin/users/import", "/admin/libraries",
         "/admin/videos", "/admin/providers", "/admin/links", "/admin/webhooks", "/admin/audit", "/admin/reports",
         "/admin/facilities", "/account"]


def failures(page: Page, url: str) -> list[str]:
    """The texts of the page at `url` below AA (the page must have text to measure)."""
    page.goto(url)
    page.wait_for_load_state("networkidle")
    result = page.evaluate(CONTRAST)
    assert result["checked"] >= 5, (url, result)
    return [f"{url}: {line}" for line in result["failures"]]


def test_every_main_page_has_aa_contrast(site: Site, browser: Browser) -> None:
    found: list[str] = []
    context, _watch = open_context(browser, site.url)
    page = context.new_page()
    found += failures(page, f"{site.url}/login")
    sign_in(page, site.url, "learner1")
    found += [line for path in LEARNER for line in failures(page, site.url + path)]
    video = failures(page, f"{site.url}/videos/{site.video_id}")
    found += video
    context.close()
    context, _watch = open_context(browser, site.url)
    page = context.new_page()
    sign_in(page, site.url, "admin1", next_path="/admin")
    found += [line for path in STAFF for line in failures(page, site.url + path)]
    context.close()
    assert found == [], "\n".join(found)


def test_states_drawn_later_have_aa_contrast(site: Site, browser: Browser) -> None:
    """What scripts and answers draw: the open suggestion list with an active entry, a test result, an error."""
    found: list[str] = []
    context, _watch = open_context(browser, site.url)
    page = context.new_page()
    sign_in(page, site.url, "learner1", next_path="/library/read/testbook/")
    page.frame_locator("#page").frame_locator("#article").get_by_role("heading", name="Home").wait_for()
    box = page.get_by_role("combobox")
    box.fill("phot")
    page.get_by_role("listbox").get_by_role("option").last.wait_for()
    box.press("ArrowDown")
    result = page.evaluate(CONTRAST)
    found += result["failures"]
    context.close()
    context, _watch = open_context(browser, site.url)
    page = context.new_page()
    sign_in(page, site.url, "admin1", next_path="/admin/providers")
    form = page.locator("#add-provider")
    tested = 0
    for _ in range(2):  # the second time the name is taken: an error
        form.get_by_label("Name", exact=True).fill("Far away")
        form.get_by_label("Address (base URL)").fill("http://192.0.2.10")
        form.locator("fieldset[data-kind='canvas_oss']").get_by_label("API access token").fill("t")
        form.get_by_role("button", name="Add and test the connection").click()
        page.wait_for_load_state()
        if page.locator("#test-result").count():
            tested += 1
            found += page.evaluate(CONTRAST)["failures"]
    assert tested == 1
    page.get_by_role("alert").wait_for()
    found += page.evaluate(CONTRAST)["failures"]
    context.close()
    assert found == [], "\n".join(found)


def test_the_check_can_fail(site: Site, browser: Browser) -> None:
    """Grey on white, as a page could get it wrong, is caught (the measurement is not vacuous)."""
    context, _watch = open_context(browser, site.url)
    page = context.new_page()
    page.goto(f"{site.url}/login")
    page.evaluate("() => { document.querySelector('h1').style.color = '#aaaaaa'; }")
    assert any("h1" in line and "< 3" in line for line in page.evaluate(CONTRAST)["failures"])
    context.close()
