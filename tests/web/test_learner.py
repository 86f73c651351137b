"""Learner pages in a real Chromium against the live daemon: with JavaScript, without it, by keyboard, on a
phone-sized screen and in Spanish. Nothing may leave 127.0.0.1 and no page may log a console error."""

from __future__ import annotations

import contextlib
import json
import re
import time
from urllib.parse import unquote

import pytest
from playwright.sync_api import Browser, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from appliance.web import scriptstrings
from tests.web.conftest import DESKTOP, PASSWORD, PHONE, Site, no_overflow, open_context, shoot, sign_in

pytestmark = pytest.mark.slow
LEARNER_PAGES = ["/", "/library", "/library/search?q=photosynthesis", "/library/search?q=zzzqqq", "/videos",
                 "/account", "/account/password", "/no/such/page"]


def test_learner_reads_searches_and_watches(site: Site, browser: Browser) -> None:
    context, watch = open_context(browser, site.url)
    page = context.new_page()
    page.goto(f"{site.url}/")
    expect(page).to_have_url(re.compile(r"/login$"))
    sign_in(page, site.url, "learner1")
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, learner1")
    expect(page.get_by_role("link", name="Test Book")).to_be_visible()
    expect(page.get_by_role("link", name="Staff console")).to_have_count(0)  # learners get no staff link

    # the library lists the visible book with its size and article count; the hidden real archive is absent
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Library").click()
    card = page.locator(".card", has=page.get_by_role("link", name="Test Book"))
    expect(card).to_contain_text("articles")
    expect(page.get_by_text("Example", exact=False)).to_have_count(0)
    card.get_by_role("link", name="Test Book").click()
    expect(page).to_have_url(re.compile(r"/library/read/testbook/"))  # the reader (it frames the archive)
    page.frame_locator("#page").frame_locator("#article").get_by_role("heading", name="Home").wait_for()

    # search results name the book by its title and highlight the match; the scope can be widened
    page.goto(f"{site.url}/library/search?q=photosynthesis&books=testbook")
    expect(page.get_by_text("Searching in: Test Book.")).to_be_visible()
    first = page.locator("ol.results li").first
    expect(first).to_contain_text("Test Book")
    expect(first.locator("mark").first).to_have_text(re.compile("photosynthesis", re.I))
    page.get_by_role("link", name="Search all books instead").click()
    expect(page.get_by_text("Searching in all your books.")).to_be_visible()
    page.locator("ol.results li a").first.click()
    expect(page).to_have_url(re.compile(r"/library/read/testbook/a/photosynthesis"))
    page.frame_locator("#page").frame_locator("#article").get_by_role("heading", name="Photosynthesis").wait_for()

    # an empty result helps instead of showing nothing
    page.goto(f"{site.url}/library/search?q=zzzqqq")
    expect(page.get_by_text("Nothing found for “zzzqqq”.")).to_be_visible()
    expect(page.get_by_role("link", name="Browse the library")).to_be_visible()

    # videos: length (not "0 min"), the player, and resume after seeking
    page.goto(f"{site.url}/videos")
    card = page.locator(".card").first
    expect(card).to_contain_text("0:05")
    card.get_by_role("link").click()
    video = page.locator("video#player")
    video.wait_for()
    page.wait_for_function("() => document.querySelector('video').readyState >= 1")
    page.evaluate("() => { const v = document.querySelector('video'); v.currentTime = 3; }")
    for _ in range(50):  # the player reports the position on "seeked"
        status, answer = site.api("GET", f"/api/v1/videos/{site.video_id}/position", who="learner1")
        if status == 200 and answer["data"] and answer["data"]["position_s"] >= 2.5:
            break
        time.sleep(0.1)
    page.reload()
    expect(page.locator("#resume-note")).to_contain_text("Resuming at 0:03")
    assert re.search(r"#t=3(\.\d)?$", video.get_attribute("src") or "")  # resume works without JavaScript too
    page.get_by_role("button", name="Add to favourites").click()  # a form: works without JavaScript too
    expect(page.get_by_role("button", name="Remove from favourites")).to_be_visible()
    page.goto(f"{site.url}/videos?favorites=1")
    expect(page.locator(".card").first).to_contain_text("Favourite")
    assert site.api("DELETE", f"/api/v1/videos/{site.video_id}/favorite", who="learner1")[0] == 200
    assert site.api("PUT", f"/api/v1/videos/{site.video_id}/favorite", who="learner1")[0] == 200
    assert site.api("PUT", "/api/v1/videos/999999/favorite", who="learner1")[0] == 404  # only playable videos
    expect(page.locator(".card").first).to_contain_text("Started")

    # the home page now offers to continue reading and watching
    page.goto(f"{site.url}/")
    expect(page.get_by_role("heading", name="Continue reading")).to_be_visible()
    expect(page.get_by_role("link", name="Photosynthesis")).to_be_visible()
    expect(page.get_by_role("heading", name="Continue watching")).to_be_visible()

    # every learner page: one h1, a skip link, no sideways scrolling on a phone, screenshots
    for path in LEARNER_PAGES:
        name = path.strip("/").split("?")[0].replace("/", "-") or "home"
        if "zzz" in path:
            name += "-empty"
        for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
            page.set_viewport_size(size)
            page.goto(site.url + path)
            assert page.locator("h1").count() == 1, path
            assert page.locator("a.skip").count() == 1, path
            assert no_overflow(page), f"{path} scrolls sideways at {size['width']} px"
            shoot(page, f"learner-{name}-{label}")
    error_page = page.goto(f"{site.url}/no/such/page")
    assert error_page is not None and error_page.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()

    page.set_viewport_size(DESKTOP)
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    assert watch.external == []
    assert [e for e in watch.errors if "404" not in e] == []  # the 404 page itself logs its status
    context.close()


def test_without_javascript(site: Site, browser: Browser) -> None:
    context, watch = open_context(browser, site.url, java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{site.url}/library")
    expect(page).to_have_url(re.compile(r"/login\?next=/library$"))
    page.get_by_label("Username").fill("learner1")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{site.url}/library")  # back where the learner was heading
    expect(page.get_by_role("link", name="Test Book")).to_be_visible()
    page.get_by_label("Search all books").fill("photosynthesis")
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(r"/library/search\?q=photosynthesis"))
    expect(page.locator("ol.results li").first).to_contain_text("Test Book")
    expect(page.locator("ol.results mark").first).to_be_visible()
    page.goto(f"{site.url}/videos/{site.video_id}")
    expect(page.locator("video#player")).to_be_visible()
    # a wrong password is answered on the page, in words, and still never lands in a URL
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Username").fill("learner1")
    page.get_by_label("Password").fill("not the password 1")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("The username or password is not right. Check them and try again.")
    assert not [u for u in watch.requests if PASSWORD.replace(" ", "+") in u or "password" in u.lower()
                and "account/password" not in u]
    assert watch.external == []
    assert [e for e in watch.errors if "401" not in e] == []  # the refused sign-in answers 401
    context.close()


def test_keyboard_only_sign_in(site: Site, browser: Browser) -> None:
    context, watch = open_context(browser, site.url)
    page = context.new_page()
    page.goto(f"{site.url}/login")
    assert page.evaluate("() => document.activeElement.id") == "username"  # the form is ready to type into
    page.keyboard.type("learner1")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "password"
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # focus is visible
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, learner1")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.className") == "skip"  # the skip link comes first
    assert page.evaluate("() => document.activeElement.getBoundingClientRect().left") >= 0  # and shows itself
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"
    assert watch.external == [] and watch.errors == []
    context.close()


def test_spanish(site: Site, browser: Browser) -> None:
    context, watch = open_context(browser, site.url, locale="es-ES")
    page = context.new_page()
    page.goto(f"{site.url}/login")
    assert page.locator("html").get_attribute("lang") == "es"
    expect(page.get_by_role("heading", level=1)).to_have_text("Iniciar sesión")
    page.get_by_label("Usuario").fill("learner1")
    page.get_by_label("Contraseña").fill(PASSWORD)
    page.get_by_role("button", name="Iniciar sesión").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Hola, learner1")
    page.goto(f"{site.url}/library/search?q=zzzqqq")
    expect(page.get_by_text("No se encontró nada para «zzzqqq».")).to_be_visible()
    shoot(page, "learner-search-empty-spanish")
    # the per-user setting wins over the browser: English chosen on the account page sticks
    page.goto(f"{site.url}/account")
    page.get_by_label("Idioma de las páginas").select_option("en")
    page.get_by_role("button", name="Guardar").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account")
    page.get_by_role("button", name="Sign out").click()
    context.clear_cookies()
    page.goto(f"{site.url}/login")  # a fresh browser (Spanish again) until the saved setting comes back
    page.get_by_label("Usuario").fill("learner1")
    page.get_by_label("Contraseña").fill(PASSWORD)
    page.get_by_role("button", name="Iniciar sesión").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, learner1")
    page.goto(f"{site.url}/account")
    page.get_by_label("Language of the pages").select_option("")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Tu cuenta")
    assert watch.external == [] and watch.errors == []
    context.close()


def test_reader_toolbar(site: Site, browser: Browser) -> None:
    """Suggestions open the article (one entry each, the match marked) or search; random stays in the reader."""
    context, watch = open_context(browser, site.url)
    page = context.new_page()
    sign_in(page, site.url, "learner1", next_path="/library/read/testbook/")
    article = page.frame_locator("#page").frame_locator("#article")
    article.get_by_role("heading", name="Home").wait_for()
    expect(page.get_by_role("heading", level=1)).to_have_count(1)
    expect(page.locator("#book-title")).to_have_text("Test Book")  # the toolbar names the book

    box = page.get_by_role("combobox", name="Search this book")
    listbox = page.get_by_role("listbox")
    box.fill("phot")
    expect(listbox).to_be_visible()
    options = listbox.get_by_role("option")
    expect(options.last).to_have_text("Search for “phot”")
    # the redirect "a/Photo" and the article share a title: one entry, with the typed part marked
    expect(options.filter(has_text=re.compile("^Photosynthesis$"))).to_have_count(1)
    expect(options.first.locator("mark")).to_have_text("Phot")
    texts = options.all_text_contents()
    assert len(texts) == len(set(texts)), texts
    assert box.get_attribute("aria-expanded") == "true"

    # keyboard: arrows move the active option (announced through aria-activedescendant), Enter opens it
    box.press("ArrowDown")
    first_id = options.first.get_attribute("id")
    assert box.get_attribute("aria-activedescendant") == first_id
    expect(options.first).to_have_attribute("aria-selected", "true")
    box.press("Enter")
    page.wait_for_url(f"{site.url}/library/read/testbook/a/photosynthesis")
    article.get_by_role("heading", name="Photosynthesis").wait_for()
    expect(listbox).to_be_hidden()

    # Escape closes the list; the last entry searches the text instead
    box.fill("alge")
    expect(listbox).to_be_visible()
    box.press("Escape")
    expect(listbox).to_be_hidden()
    assert box.get_attribute("aria-expanded") == "false"
    box.fill("wate")
    expect(options.last).to_have_text("Search for “wate”")
    box.press("ArrowUp")  # from nowhere, up goes to the last entry
    box.press("Enter")
    page.wait_for_url(re.compile(r"/library/search\?q=wate&books=testbook$"))

    # a mouse click on a suggestion opens it too
    page.goto(f"{site.url}/library/read/testbook/")
    article.get_by_role("heading", name="Home").wait_for()
    box.fill("algeb")
    options.filter(has_text="Algebra").click()
    page.wait_for_url(f"{site.url}/library/read/testbook/a/algebra")
    article.get_by_role("heading", name="Algebra").wait_for()

    # random: the reader's address names the article shown, and it is still the reader, not the content origin
    reader_article = re.compile(re.escape(site.url) + r"/library/read/testbook/(?!a/algebra$).+")
    for _ in range(5):  # a random pick may land on the article already open: try a few times
        page.get_by_role("link", name="Random article").click()
        with contextlib.suppress(PlaywrightTimeoutError):  # the same article again: another try
            page.wait_for_url(reader_article, timeout=3000)
        if reader_article.match(page.url):
            break
    expect(page).to_have_url(reader_article)
    shown = page.url.split("/library/read/testbook/", 1)[1]
    frame_url = page.frame_locator("#page").locator("#article").evaluate("f => f.contentWindow.location.pathname")
    assert unquote(frame_url) == f"/content/testbook/{unquote(shown)}"
    assert page.evaluate("() => window.top === window && location.pathname.startsWith('/library/read/')")
    # an article whose path holds "?", "&" and "#" keeps them in the reader's address (escaped), and a reload
    # opens the same article
    page.goto(f"{site.url}/library/read/testbook/a/q%3Fx%26y%23z")
    article.get_by_role("heading", name="Odd Path").wait_for()
    page.reload()
    article.get_by_role("heading", name="Odd Path").wait_for()
    assert page.url.endswith("/library/read/testbook/a/q%3Fx%26y%23z"), page.url
    # the no-JavaScript link form of random (?random) opens the reader on a random article as well
    page.goto(f"{site.url}/library/read/testbook/?random")
    page.wait_for_url(re.compile(re.escape(site.url) + r"/library/read/testbook/[^?]+$"))
    for size in (PHONE, DESKTOP):
        page.set_viewport_size(size)
        assert no_overflow(page)
    shoot(page, "learner-reader-desktop")
    assert watch.external == [] and watch.errors == []
    context.close()


def test_script_sentences_are_translated(site: Site, browser: Browser) -> None:
    """The scripts' sentences come from the catalogue: a Spanish page hands its scripts Spanish."""
    english = scriptstrings.STRINGS
    same_in_both = {"min_s", "s", "state_error"}  # "{min} min {s} s" and "error" are Spanish too
    context, watch = open_context(browser, site.url, locale="es-ES")
    page = context.new_page()
    page.goto(f"{site.url}/login")
    page.get_by_label("Usuario").fill("learner1")
    page.get_by_label("Contraseña").fill(PASSWORD)
    page.get_by_role("button", name="Iniciar sesión").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Hola, learner1")
    for path in ("/", f"/videos/{site.video_id}", "/library/read/testbook/"):
        page.goto(site.url + path)
        given = json.loads(page.locator("#ui-strings").text_content() or "{}")
        assert set(english) <= set(given), path
        untranslated = sorted(k for k, v in english.items() if given[k] == v and k not in same_in_both)
        assert untranslated == [], (path, untranslated)
        if path.startswith("/videos/"):  # the media scripts show API errors: their sentences come too
            assert given["error:forbidden"] == "No tienes permiso para ver esta página."
    # what a script builds, a learner reads in Spanish: the reader's last suggestion and its toolbar
    box = page.get_by_role("combobox", name="Buscar en este libro")
    box.fill("phot")
    expect(page.get_by_role("listbox").get_by_role("option").last).to_have_text("Buscar «phot»")
    expect(page.get_by_role("link", name="Artículo al azar")).to_be_visible()
    assert page.locator("html").get_attribute("lang") == "es"
    assert watch.external == [] and watch.errors == []
    context.close()
    # and the English page hands them English
    context, watch = open_context(browser, site.url)
    page = context.new_page()
    sign_in(page, site.url, "learner1", next_path="/library/read/testbook/")
    given = json.loads(page.locator("#ui-strings").text_content() or "{}")
    assert {k: given[k] for k in english} == english
    context.close()
