"""A live `appliance serve` with real archives and a real video, and a real Chromium to drive it.

One daemon per test module (starting it costs seconds); users are made directly in its database, content
is made visible through the API, exactly as staff would.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from appliance.auth.passwords import hash_password
from appliance.auth.usernames import username_key
from tests.content.zimbuilder import build_zim
from tests.daemon import STARTED, Daemon, start_daemon
from tests.media.realservers import make_sample_mp4

DATA = Path(__file__).resolve().parent.parent / "data"
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
PASSWORD = "correct horse 42"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


@dataclass
class Site:
    """The running daemon and what the tests need to know about it."""

    daemon: Daemon
    url: str
    users: dict[str, int] = field(default_factory=dict)
    libraries: dict[str, int] = field(default_factory=dict)
    video_id: int = 0
    _sessions: dict[str, tuple[str, str]] = field(default_factory=dict)

    def add_user(self, name: str, role: str, facility_id: int = 1, password: str = PASSWORD) -> int:
        """Insert an account straight into the database (the first admin is made this way on a device too)."""
        db = sqlite3.connect(self.daemon.data_dir / "appliance.db")
        with db:
            cur = db.execute(
                "INSERT INTO users (uuid, username, username_key, facility_id, role, password_hash)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (str(uuid.uuid4()), name, username_key(name), facility_id, role, hash_password(password)))
        db.close()
        self.users[name] = int(cur.lastrowid or 0)
        return self.users[name]

    def session(self, who: str) -> tuple[str, str]:
        """(cookie, csrf token) of a JSON sign-in as `who`."""
        if who not in self._sessions:
            req = urllib.request.Request(f"{self.url}/api/v1/auth/login", method="POST",
                                         data=json.dumps({"username": who, "password": PASSWORD}).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as resp:
                cookie = resp.headers["Set-Cookie"].split(";", 1)[0]
                csrf = json.loads(resp.read())["data"]["csrf_token"]
            self._sessions[who] = (cookie, csrf)
        return self._sessions[who]

    def api(self, method: str, path: str, body: Any = None, *, who: str = "admin1",
            raw: bytes | None = None, content_type: str = "application/json") -> tuple[int, Any]:
        """Call the JSON API as `who`."""
        cookie, csrf = self.session(who)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, method=method, data=data,
                                     headers={"Cookie": cookie, "X-CSRF-Token": csrf, "Content-Type": content_type})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def upload(self, path: Path) -> int:
        """Upload a video file as staff do (multipart)."""
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"Plant cells.mp4\"\r\n"
                "Content-Type: video/mp4\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        status, answer = self.api("POST", "/api/v1/videos/upload", raw=body,
                                  content_type=f"multipart/form-data; boundary={boundary}")
        assert status == 201, answer
        return int(answer["data"]["id"])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The daemon with a built test book (visible to facility 1), a real archive (hidden) and a visible video."""
    root = tmp_path_factory.mktemp("site")
    zims = root / "content" / "zim"
    zims.mkdir(parents=True)
    build_zim(zims / "testbook.zim")
    shutil.copy(DATA / "example.zim", zims / "example.zim")
    daemon = start_daemon(root, "[content]\nrefresh_interval_s = 0.2\nview_flush_interval_s = 0.2\n")
    STARTED.remove(daemon)  # this fixture stops it after the module, not the per-test cleanup after one test
    try:
        s = Site(daemon, daemon.url)
        s.add_user("admin1", "system_admin")
        s.add_user("learner1", "learner")
        status, libs = s.api("GET", "/api/v1/libraries?per_page=100")
        assert status == 200, libs
        s.libraries = {lib["slug"]: lib["id"] for lib in libs["data"]}
        assert s.api("PUT", f"/api/v1/libraries/{s.libraries['testbook']}/visibility", {"facility_ids": [1]})[0] == 200
        s.video_id = s.upload(make_sample_mp4(root / "sample.mp4"))
        assert s.api("PUT", f"/api/v1/videos/{s.video_id}/visibility", {"facility_ids": [1]})[0] == 200
        yield s
    finally:
        assert daemon.stop() == 0


@dataclass
class Watch:
    """What a browser context did that a test must check: requests, console errors, failed responses."""

    base: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def external(self) -> list[str]:
        """Requests that left 127.0.0.1 (the app and its content origin, on another port, are both there)."""
        return [u for u in self.requests
                if not u.startswith("data:") and urlsplit(u).hostname != "127.0.0.1"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, with nothing allowed to phone home."""
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def open_context(browser: Browser, base: str, **options: Any) -> tuple[BrowserContext, Watch]:
    """A fresh context (no cookies) that records every request and every console or page error."""
    context = browser.new_context(**{"viewport": DESKTOP, **options})
    watch = Watch(base)

    def on_page(page: Page) -> None:
        page.on("request", lambda r: watch.requests.append(r.url))
        page.on("console", lambda m: watch.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: watch.errors.append(str(exc)))

    context.on("page", on_page)
    return context, watch


def sign_in(page: Page, base: str, who: str, *, next_path: str = "/") -> None:
    """Fill and post the sign-in form."""
    page.goto(f"{base}/login?next={next_path}")
    page.get_by_label("Username").fill(who)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def no_overflow(page: Page) -> bool:
    """The page does not scroll sideways (nothing wider than the viewport)."""
    return bool(page.evaluate("() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"))


def shoot(page: Page, name: str) -> None:
    """Save a full-page screenshot as a test artifact (git-ignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
