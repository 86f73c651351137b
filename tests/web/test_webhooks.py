"""The staff webhooks page in a real browser: add one (its signing secret shown once), send a test that a real
local HTTP receiver gets, read the delivery's state, disable and delete."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Browser, expect

from tests.web.conftest import DESKTOP, PHONE, Site, no_overflow, open_context, shoot, sign_in

pytestmark = pytest.mark.slow
SECRET = re.compile(r"^whsec_[A-Za-z0-9+/=]{40,}$")


class Receiver(ThreadingHTTPServer):
    """A webhook receiver on 127.0.0.1 that answers 204 and keeps what it was sent."""

    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], dict[str, object]]] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        assert isinstance(self.server, Receiver)
        self.server.got.append(({k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        return


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_admin_manages_webhooks(site: Site, browser: Browser, receiver: Receiver) -> None:
    context, watch = open_context(browser, site.url)
    page = context.new_page()
    sign_in(page, site.url, "admin1", next_path="/admin/webhooks")
    expect(page.get_by_role("heading", level=1)).to_have_text("Webhooks")
    expect(page.get_by_text("No webhook yet.")).to_be_visible()

    # bad input: a clear sentence, the typed address kept, nothing stored
    form = page.locator("#add-webhook")
    form.get_by_label("Address (URL the appliance calls)").fill("http://user:pw@127.0.0.1:9/x")
    form.get_by_role("button", name="Add the webhook").click()
    expect(page.get_by_role("alert")).to_contain_text("must not carry credentials")
    expect(form.get_by_label("Address (URL the appliance calls)")).to_have_value("http://user:pw@127.0.0.1:9/x")
    assert site.api("GET", "/api/v1/webhooks")[1]["data"] == []

    form.get_by_label("Address (URL the appliance calls)").fill(receiver.url)
    form.get_by_label("Description (optional)").fill("School office")
    form.get_by_label("user.created").check()
    form.get_by_label("video.available").check()
    form.get_by_role("button", name="Add the webhook").click()
    secret = page.get_by_role("textbox", name="Signing secret")
    expect(secret).to_have_value(SECRET)
    shown = secret.input_value()
    expect(page.locator("#webhooks")).to_contain_text("user.created, video.available")
    shoot(page, "staff-admin-webhooks-secret")
    # shown once: the list page never carries it again
    page.goto(f"{site.url}/admin/webhooks")
    expect(page.locator("#new-secret")).to_have_count(0)
    assert shown not in page.content()
    assert SECRET.match(shown)

    # send a test: the receiver gets a signed webhook.ping, the page shows it delivered
    page.get_by_role("button", name="Send a test").click()
    expect(page.get_by_role("status").first).to_contain_text("A test delivery is queued")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        page.goto(f"{site.url}/admin/webhooks")
        if page.locator("table.deliveries tr[data-state=succeeded]").count():
            break
        time.sleep(0.5)
    row = page.locator("table.deliveries tr[data-state=succeeded]").first
    expect(row).to_contain_text("webhook.ping")
    expect(row).to_contain_text("delivered")
    expect(row).to_contain_text("HTTP 204")
    headers, body = receiver.got[-1]
    assert body["type"] == "webhook.ping"
    assert headers["webhook-signature"].startswith("v1,") and headers["webhook-id"]

    # disable, enable, delete
    page.get_by_role("button", name="Disable").click()
    expect(page.locator("#webhooks")).to_contain_text("Off")
    assert site.api("GET", "/api/v1/webhooks")[1]["data"][0]["enabled"] is False
    page.get_by_role("button", name="Enable").click()
    expect(page.locator("#webhooks")).to_contain_text("On")
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.goto(f"{site.url}/admin/webhooks")
        assert no_overflow(page), f"/admin/webhooks scrolls sideways at {size['width']} px"
        shoot(page, f"staff-admin-webhooks-{label}")
    page.set_viewport_size(DESKTOP)
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_text("No webhook yet.")).to_be_visible()
    assert site.api("GET", "/api/v1/webhooks")[1]["data"] == []
    assert watch.external == []
    assert [e for e in watch.errors if "status of 400" not in e] == []  # the refused form came back as a 400
    context.close()


def test_webhooks_page_is_for_system_admins(site: Site, browser: Browser) -> None:
    site.add_user("facadmin-w", "facility_admin")
    context, _watch = open_context(browser, site.url)
    page = context.new_page()
    sign_in(page, site.url, "facadmin-w", next_path="/admin")
    answer = page.goto(f"{site.url}/admin/webhooks")
    assert answer is not None and answer.status == 403
    expect(page.get_by_role("link", name="Webhooks")).to_have_count(0)
    context.close()
