"""A real Kolibri for tests and benchmarks: installed once into its own cached venv, started per session.

The venv lives outside the repository (`/var/cache/appliance-tests/kolibri-<version>`, or under
`$APPLIANCE_TEST_CACHE`) so that fresh clones reuse it; the first run installs it (about 70 s). Each
server gets its own `KOLIBRI_HOME` in a temporary folder, is provisioned with `kolibri manage
provisiondevice`, listens on 127.0.0.1 on a free port with zeroconf off, and is stopped (its whole process
group) at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

KOLIBRI_VERSION = "0.19.5"
CACHE = Path(os.environ.get("APPLIANCE_TEST_CACHE", "/var/cache/appliance-tests"))
ADMIN_USER = "kadmin"
ADMIN_PASSWORD = "kadmin-pass-1"
FACILITY_NAME = "Unit A"
INSTALL_TIMEOUT_S = 900
START_TIMEOUT_S = 120


def venv_dir() -> Path:
    """Where the pinned Kolibri is installed."""
    return CACHE / f"kolibri-{KOLIBRI_VERSION}"


def ensure_installed() -> Path:
    """The venv's python, installing `kolibri==KOLIBRI_VERSION` first when it is not cached (one installer at
    a time, atomically renamed into place so an interrupted install is never mistaken for a finished one)."""
    venv = venv_dir()
    python = venv / "bin" / "python"
    if (venv / ".complete").exists():
        return python
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"kolibri-{KOLIBRI_VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / ".complete").exists():
            return python
        staging = Path(tempfile.mkdtemp(prefix=f"kolibri-{KOLIBRI_VERSION}.", dir=CACHE))
        try:
            # The venv is created at its final path's sibling and renamed: scripts are never used (we run
            # `python -m kolibri`), so their absolute shebangs do not matter.
            base = getattr(sys, "_base_executable", sys.executable)
            subprocess.run([base, "-m", "venv", str(staging)], check=True, timeout=120)
            subprocess.run(
                # --no-compile: 66 s instead of 190 s here; Python compiles what Kolibri imports on first start.
                [str(staging / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-compile",
                 "--disable-pip-version-check", f"kolibri=={KOLIBRI_VERSION}"],
                check=True,
                timeout=INSTALL_TIMEOUT_S,
            )
            (staging / ".complete").write_text(KOLIBRI_VERSION)
            if venv.exists():
                shutil.rmtree(venv)
            staging.rename(venv)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return python


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RealKolibri:
    """A provisioned Kolibri server: its URL, home, facility id and admin account."""

    python: Path
    home: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    facility_id: str = ""
    log_path: Path = field(default_factory=lambda: Path(os.devnull))

    @property
    def base_url(self) -> str:
        """Where Kolibri listens."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def credentials(self) -> dict[str, str]:
        """The facility admin's credentials as a provider takes them."""
        return {"username": ADMIN_USER, "password": ADMIN_PASSWORD}

    def env(self) -> dict[str, str]:
        """Kolibri's environment: its own home, loopback only, no zeroconf."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KOLIBRI_", "VIRTUAL_ENV", "PYTHON"))}
        env.update(
            KOLIBRI_HOME=str(self.home),
            KOLIBRI_ZEROCONF_ENABLED="false",
            KOLIBRI_HTTP_PORT=str(self.port),
            KOLIBRI_LISTEN_ADDRESS="127.0.0.1",
            KOLIBRI_RUN_MODE="appliance-tests",
        )
        return env

    def kolibri(self, *args: str, timeout: float = 300, input_text: str | None = None) -> str:
        """Run a `kolibri` command to completion; returns its stdout."""
        done = subprocess.run(
            [str(self.python), "-m", "kolibri", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input_text,
        )
        if done.returncode != 0:
            raise RuntimeError(f"kolibri {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return done.stdout

    def provision(self) -> None:
        """A device with one facility and a superuser (who is also the facility's admin)."""
        self.kolibri(
            "manage", "provisiondevice", "--", "--facility", FACILITY_NAME, "--superusername", ADMIN_USER,
            "--superuserpassword", ADMIN_PASSWORD, "--preset", "formal", "--language_id", "en", "--noinput",
        )

    def start(self) -> None:
        """`kolibri start --foreground` in its own process group; waits for the public facility list."""
        self.log_path = self.home / "server.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(self.python), "-m", "kolibri", "start", "--foreground"],
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Kolibri exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/api/public/v1/facility/", timeout=5) as resp:
                    facilities = json.loads(resp.read())
                    self.facility_id = facilities[0]["id"]
                    return
            except (urllib.error.URLError, OSError, ValueError, IndexError, KeyError) as exc:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"Kolibri did not answer within {START_TIMEOUT_S}s:\n{self.log_tail()}") from exc
                time.sleep(0.5)

    def stop(self) -> None:
        """Stop the whole process group (Kolibri forks workers): TERM, then KILL."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def log_tail(self) -> str:
        """The end of the server's log."""
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def shell(self, code: str, timeout: float = 300) -> str:
        """Run Python inside Kolibri's Django (`kolibri shell`); returns what it printed."""
        return self.kolibri("shell", "--", "-c", code, timeout=timeout)

    def seed_progress(self, rows: list[dict[str, Any]]) -> None:
        """Content summary logs written through Kolibri's own models: rows of
        {username, content_id, channel_id, kind, time_spent, progress, completed (bool), minutes_ago}."""
        code = f"""
import json, datetime
from django.utils import timezone
from kolibri.core.auth.models import FacilityUser
from kolibri.core.logger.models import ContentSummaryLog
rows = json.loads({json.dumps(json.dumps(rows))})
users = {{u.username: u for u in FacilityUser.objects.filter(username__in=[r["username"] for r in rows])}}
now = timezone.now()
for r in rows:
    end = now - datetime.timedelta(minutes=r.get("minutes_ago", 5))
    ContentSummaryLog.objects.update_or_create(
        user=users[r["username"]], content_id=r["content_id"],
        defaults=dict(channel_id=r["channel_id"], kind=r.get("kind", "video"),
                      start_timestamp=end - datetime.timedelta(seconds=r["time_spent"]), end_timestamp=end,
                      completion_timestamp=end if r.get("completed") else None,
                      time_spent=r["time_spent"], progress=r["progress"]))
print("seeded", len(rows))
"""
        out = self.shell(code)
        assert f"seeded {len(rows)}" in out, out


def start_kolibri(home: Path) -> RealKolibri:
    """Install (once), provision and start a Kolibri whose home is `home`."""
    server = RealKolibri(python=ensure_installed(), home=home, port=free_port())
    home.mkdir(parents=True, exist_ok=True)
    server.provision()
    server.start()
    return server


class KolibriAdmin:
    """The test's own hands on Kolibri's API (signed in as the facility admin), independent of the connector."""

    def __init__(self, server: RealKolibri) -> None:
        self.server = server
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def __aenter__(self) -> KolibriAdmin:
        await self.request("POST", "/api/auth/session/",
                           {"username": ADMIN_USER, "password": ADMIN_PASSWORD, "facility": self.server.facility_id})
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.close()

    async def request(self, method: str, path: str, body: Any = None, params: Any = None) -> Any:
        """One call; raises on an error status."""
        headers = {}
        for cookie in self.http.cookie_jar:
            if cookie.key == "kolibri_csrftoken":
                headers["X-CSRFToken"] = cookie.value
        async with self.http.request(method, self.server.base_url + path, json=body, params=params,
                                     headers=headers) as resp:
            text = await resp.text()
            if resp.status >= 400:
                raise RuntimeError(f"{method} {path} -> {resp.status}: {text[:500]}")
            return json.loads(text) if text else None

    async def create_user(self, username: str, full_name: str = "", password: str = "learner-pass-1") -> dict:
        """A learner of the facility."""
        return await self.request("POST", "/api/auth/facilityuser/", {
            "username": username, "password": password, "full_name": full_name or username,
            "facility": self.server.facility_id})

    async def create_classroom(self, name: str) -> dict:
        """A classroom of the facility."""
        return await self.request("POST", "/api/auth/classroom/", {"name": name, "parent": self.server.facility_id})

    async def add_member(self, user_id: str, classroom_id: str) -> dict:
        """A learner's membership of a classroom."""
        return await self.request("POST", "/api/auth/membership/", {"user": user_id, "collection": classroom_id})

    async def create_lesson(self, classroom_id: str, title: str, resources: list[tuple[str, str]],
                            *, active: bool = True) -> dict:
        """A lesson of a classroom assigning resources, given as (channel id, content id), to the whole class.

        Kolibri validates only the shape of a lesson's resources (hex ids), not that the content is imported,
        so made-up ids stand for resources here as they do in the seeded summary logs."""
        me = await self.request("PUT", "/api/auth/session/current/", {})
        return await self.request("POST", "/api/lessons/lesson/", {
            "title": title, "collection": classroom_id, "active": active, "created_by": me["user_id"],
            "assignments": [classroom_id],
            "resources": [{"channel_id": ch, "content_id": co, "contentnode_id": co} for ch, co in resources]})

    async def lessons(self, classroom_id: str) -> Any:
        """The lessons of one classroom, as Kolibri answers them."""
        return await self.request("GET", "/api/lessons/lesson/", params={"collection": classroom_id})

    async def users(self, **params: str) -> list[dict]:
        """Facility users (unpaged)."""
        return await self.request("GET", "/api/auth/facilityuser/",
                                  params={"member_of": self.server.facility_id, **params})

    async def deleted_users(self) -> list[dict]:
        """Soft-deleted facility users."""
        return await self.request("GET", "/api/auth/deletedfacilityuser/",
                                  params={"member_of": self.server.facility_id})

    async def memberships(self, classroom_id: str) -> list[dict]:
        """Memberships of one classroom."""
        return await self.request("GET", "/api/auth/membership/", params={"collection": classroom_id})


class TcpRelay:
    """A TCP relay in front of a server whose link can be cut (connections reset, new ones refused) and restored."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.cut_off = False
        self.cuts = 0
        self.requests = 0  # HTTP requests relayed (one Host header each)
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()

    @property
    def base_url(self) -> str:
        """The relay's address."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> TcpRelay:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Stop listening and drop every connection."""
        self.cut()
        self.cuts -= 1  # not a cut the test asked for
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        """The uplink goes away: live connections are reset and new ones are closed at once."""
        self.cut_off = True
        self.cuts += 1
        for writer in list(self._conns):
            writer.transport.abort()
        self._conns.clear()

    def restore(self) -> None:
        """The uplink is back."""
        self.cut_off = False

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut_off:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._conns.update({writer, up_writer})

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    if dst is not writer:
                        self.requests += data.count(b"\r\nHost:")
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort() if self.cut_off else dst.close()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            self._conns.discard(writer)
            self._conns.discard(up_writer)
