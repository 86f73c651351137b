"""The full app starts with a real nats-server and answers its core routes."""

from aiohttp.test_utils import TestClient


async def test_healthz_and_readyz(client: TestClient) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 200, body
    assert body["data"]["checks"]["nats"]["ok"] is True
