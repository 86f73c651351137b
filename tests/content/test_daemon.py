"""The real daemon with two HTTP processes: discovery at start-up, on SIGHUP and by the periodic scan."""

import json
import shutil
import signal
import sqlite3
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from appliance.auth.passwords import hash_password
from appliance.auth.usernames import username_key
from tests.daemon import Daemon, start_daemon


def login(d: Daemon) -> str:
    db = sqlite3.connect(d.data_dir / "appliance.db")
    with db:
        db.execute("INSERT INTO users (uuid, username, username_key, facility_id, role, password_hash)"
                   " VALUES (?, 'root1', ?, 1, 'system_admin', ?)",
                   (str(uuid.uuid4()), username_key("root1"), hash_password("correct horse 42")))
    db.close()
    req = urllib.request.Request(f"{d.url}/api/v1/auth/login", method="POST",
                                 data=json.dumps({"username": "root1", "password": "correct horse 42"}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.headers["Set-Cookie"].split(";", 1)[0]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def content_pass(d: Daemon, cookie: str) -> str:
    """What the reader does: a URL pass from the app port, traded at the content port for its cookie."""
    status, body = d.get("/api/v1/library/pass", headers={"Cookie": cookie})
    assert status == 200, body
    url = json.loads(body)["data"]["url"]
    assert url.startswith(d.content_url + "/_pass?t=")
    opener = urllib.request.build_opener(_NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as caught:
        opener.open(url, timeout=10)
    assert caught.value.code == 303
    return str(caught.value.headers["Set-Cookie"]).split(";", 1)[0]


def content_get(d: Daemon, path: str, cookie: str) -> tuple[int, bytes]:
    """GET on the content origin."""
    req = urllib.request.Request(d.content_url + path, headers={"Cookie": cookie})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def slugs(d: Daemon, cookie: str) -> dict[str, str]:
    status, body = d.get("/api/v1/libraries?per_page=100", headers={"Cookie": cookie})
    assert status == 200, body
    return {lib["slug"]: lib["state"] for lib in json.loads(body)["data"]}


def wait_for(d: Daemon, cookie: str, expected: dict[str, str], timeout: float = 20) -> None:
    """Poll until every HTTP process reports the expected libraries (requests land on either worker)."""
    deadline = time.monotonic() + timeout
    seen: dict[str, str] = {}
    while time.monotonic() < deadline:
        if all((seen := slugs(d, cookie)) == expected for _ in range(6)):
            return
        time.sleep(0.2)
    raise AssertionError(f"expected {expected}, last saw {seen}")


@pytest.mark.slow
def test_discovery_sighup_and_periodic_scan(tmp_path: Path, zim_dir: Path) -> None:
    zims = tmp_path / "content" / "zim"
    zims.mkdir(parents=True)
    shutil.copy(zim_dir / "testbook.zim", zims / "testbook.zim")
    d = start_daemon(tmp_path, "[content]\nscan_interval_s = 1.0\nrefresh_interval_s = 0.2\n", workers=2)
    try:
        cookie = login(d)
        wait_for(d, cookie, {"testbook": "ready"})
        # SIGHUP: the primary rescans; both workers pick the change up.
        shutil.copy(zim_dir / "noindex.zim", zims / "noindex.zim")
        d.proc.send_signal(signal.SIGHUP)
        wait_for(d, cookie, {"testbook": "ready", "noindex": "ready"})
        # The periodic scan notices a vanished file and a corrupt newcomer by itself.
        (zims / "noindex.zim").unlink()
        shutil.copy(zim_dir / "corrupt.zim", zims / "corrupt.zim")
        wait_for(d, cookie, {"testbook": "ready", "noindex": "missing", "corrupt": "error"})
        # Archive pages come from the content port, in every HTTP process (requests land on either).
        passed = content_pass(d, cookie)
        for _ in range(6):
            status, body = content_get(d, "/content/testbook/a/algebra", passed)
            assert status == 200
            assert b"Algebra" in body
            assert content_get(d, "/content/testbook/a/algebra", cookie)[0] == 403  # the session is no pass
            assert content_get(d, "/api/v1/auth/me", f"{cookie}; {passed}")[0] == 404
        status, body = d.get("/content/testbook/a/algebra", headers={"Cookie": cookie})
        assert status == 200 and b"/static/learner/reader.js" in body  # the app port only has the reader
        status, metrics = d.get("/metrics")
        assert status == 200
        assert b"appliance_content_cluster_cache_max_bytes" in metrics
    finally:
        assert d.stop() == 0
