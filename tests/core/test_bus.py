"""The embedded NATS server: authenticated on loopback, permissions limited, external bus.url honoured."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import nats
import pytest
from aiohttp.test_utils import TestClient
from nats.errors import NoServersError

from appliance.bus.credentials import load_or_create
from appliance.bus.server import find_binary
from appliance.config import Config
from appliance.keys import BUS, CONFIG, NATS_SERVER
from tests.conftest import free_port


async def test_credentials_file_is_private_and_anonymous_clients_are_refused(client: TestClient) -> None:
    config = client.app[CONFIG]
    creds_path = config.paths.data_dir / "nats" / "credentials.json"
    assert creds_path.stat().st_mode & 0o777 == 0o600
    conf = (config.paths.data_dir / "nats" / "nats-server.conf")
    assert conf.stat().st_mode & 0o777 == 0o600
    assert 'listen: "127.0.0.1:' in conf.read_text()
    server = client.app[NATS_SERVER]
    assert server is not None
    with pytest.raises((NoServersError, nats.errors.Error, OSError)):
        await nats.connect(server.url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=2)


async def test_permissions_allow_only_the_appliance_subjects(client: TestClient) -> None:
    server = client.app[NATS_SERVER]
    config = client.app[CONFIG]
    creds = load_or_create(config.paths.data_dir / "nats" / "credentials.json")
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    nc = await nats.connect(server.url, user=creds.user, password=creds.password, error_cb=on_error,
                            allow_reconnect=False)
    try:
        await nc.publish("appliance.test.ok", b"x")
        await nc.publish("other.subject", b"x")
        await nc.flush()
        await nc.flush()
    finally:
        await nc.close()
    assert any("permissions violation for publish to \"other.subject\"" in str(e).lower() for e in errors), errors
    assert not any("appliance.test.ok" in str(e) for e in errors)


async def test_streams_are_declared_idempotently(client: TestClient) -> None:
    from appliance.bus.specs import STREAMS, ensure_streams

    js = client.app[BUS].js
    await ensure_streams(js, STREAMS)  # a second declaration is a no-op, not an error
    names = {info.config.name for info in await js.streams_info()}
    assert {spec.name for spec in STREAMS} <= names


@pytest.fixture
def external_nats(tmp_path: Path):
    binary = find_binary()
    assert binary is not None
    port = free_port()
    conf = tmp_path / "ext.conf"
    conf.write_text(
        f'listen: "127.0.0.1:{port}"\njetstream {{ store_dir: "{tmp_path / "ext-js"}" }}\n'
        'authorization { users = [ { user: "ext", password: "ext-secret-1" } ] }\n'
    )
    proc = subprocess.Popen([str(binary), "-c", str(conf)], stderr=subprocess.PIPE)
    assert proc.stderr is not None
    for line in proc.stderr:
        if b"Server is ready" in line:
            break
    yield port
    proc.terminate()
    proc.wait(10)


async def test_external_bus_url_replaces_the_embedded_server(
    external_nats: int, config_factory: Callable[..., Config], app_client, tmp_path: Path
) -> None:
    creds = tmp_path / "ext-creds.json"
    creds.write_text(json.dumps({"user": "ext", "password": "ext-secret-1"}))
    config = config_factory(bus={"url": f"nats://127.0.0.1:{external_nats}", "credentials_file": str(creds)})
    client = await app_client(config)
    assert client.app[NATS_SERVER] is None
    assert client.app[BUS].connected
    resp = await client.get("/readyz")
    assert resp.status == 200
    assert not (config.paths.data_dir / "nats" / "nats-server.conf").exists()
