"""Core fixtures: configs in a temp folder, the full app with a real embedded nats-server, users."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from appliance.app import create_app
from appliance.auth.passwords import hash_password
from appliance.auth.usernames import username_key
from appliance.config import Config, load_config
from appliance.core.blocking import run_blocking
from appliance.core.process import ProcessRole
from appliance.keys import DB

REPO = Path(__file__).resolve().parent.parent
LOCAL_NETWORKS = ["127.0.0.0/8"]
"""The egress policy of every test config: the fakes, yt-dlp sites and import servers all listen on loopback.

A test of the policy itself passes its own list (`config_factory(egress={"allowed_networks": []})`,
`write_config(..., egress=[])`): the production default, public addresses only.
"""


@pytest.fixture(autouse=True)
def _stop_leftover_daemons() -> Iterator[None]:
    """Daemons started with tests.daemon.start_daemon never outlive the test that started them."""
    yield
    from tests.daemon import stop_all

    stop_all()


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def config_factory(tmp_path: Path) -> Callable[..., Config]:
    """Build a Config rooted in tmp_path; keyword arguments are section dicts: http={"port": 1}."""
    empty = tmp_path / "appliance.toml"
    empty.write_text("")

    def make(**sections: dict[str, Any]) -> Config:
        overrides: dict[str, dict[str, Any]] = {
            "paths": {"data_dir": str(tmp_path / "var"), "content_root": str(tmp_path / "content")},
            "logging": {"level": "warning", "access_log": False},
            "health": {"min_free_disk_bytes": 1024},
            "egress": {"allowed_networks": list(LOCAL_NETWORKS)},
        }
        for name, values in sections.items():
            overrides.setdefault(name, {}).update(values)
        return load_config(empty, env={}, overrides=overrides, cwd=tmp_path)

    return make


AppClientFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def app_client(config_factory: Callable[..., Config]) -> AsyncIterator[AppClientFactory]:
    """Start the full app (primary role, every feature, real nats-server) and return a test client."""
    clients: list[TestClient] = []

    async def make(config: Config | None = None, *, role: ProcessRole = ProcessRole.PRIMARY,
                   **kwargs: Any) -> TestClient:
        app = create_app(config or config_factory(), role, **kwargs)
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in reversed(clients):
        await client.close()


@pytest.fixture
async def client(app_client: AppClientFactory) -> TestClient:
    """The full app with default test config."""
    return await app_client()


MakeUser = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def make_user() -> MakeUser:
    """Insert a user straight into the database of a running test app."""

    async def make(client: TestClient, *, role: str = "learner", facility_id: int = 1,
                   username: str | None = None, password: str = "correct horse 42",
                   extra_facilities: tuple[int, ...] = (), **fields: Any) -> dict[str, Any]:
        db = client.app[DB]
        name = username or f"user{uuid.uuid4().hex[:8]}"
        hashed = await run_blocking("auth", hash_password, password)
        user_uuid = str(uuid.uuid4())
        async with db.transaction() as tx:
            cur = await tx.execute(
                "INSERT INTO users (uuid, username, username_key, first_name, last_name, email, doc_id,"
                " facility_id, role, password_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (user_uuid, name, username_key(name), fields.get("first_name", "Test"),
                 fields.get("last_name", "User"), fields.get("email"), fields.get("doc_id"),
                 facility_id, role, hashed),
            )
            user_id = cur.lastrowid
            for extra in extra_facilities:
                await tx.execute("INSERT INTO user_facilities (user_id, facility_id) VALUES (?, ?)",
                                 (user_id, extra))
        return {"id": user_id, "uuid": user_uuid, "username": name, "password": password, "role": role,
                "facility_id": facility_id}

    return make


MakeFacility = Callable[..., Awaitable[int]]


@pytest.fixture
def make_facility() -> MakeFacility:
    """Insert a facility into a running test app's database and return its id."""

    async def make(client: TestClient, name: str | None = None, timezone: str = "UTC") -> int:
        result = await client.app[DB].execute(
            "INSERT INTO facilities (name, timezone) VALUES (?, ?)", (name or f"Unit {uuid.uuid4().hex[:6]}", timezone)
        )
        assert result.lastrowid is not None
        return result.lastrowid

    return make
