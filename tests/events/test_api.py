"""Webhook API: validation with clear 400s, reserved headers refused, system admins only, secrets shown once."""

from __future__ import annotations

import pytest

from appliance.keys import DB
from tests.events.conftest import create_webhook
from tests.events.receiver import Receiver
from tests.sync.helpers import as_user

GOOD = {"url": "https://hooks.example.org/in", "events": ["user.created", "video.available"],
        "description": "case management", "headers": {"X-Api-Key": "k-123"}, "enabled": True}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "url"),
        ({"url": "ftp://x.example/a"}, "url"),
        ({"url": "http:///nohost"}, "url"),
        ({"url": "https://user:pw@x.example/"}, "url"),
        ({"url": "https://x.example/a b"}, "url"),
        ({"url": "https://x.example/" + "a" * 3000}, "url"),
        ({"url": "https://x.example:99999/"}, "url"),
        ({"url": 42}, "url"),
        ({**GOOD, "events": []}, "events"),
        ({**GOOD, "events": "user.created"}, "events"),
        ({**GOOD, "events": ["user.exploded"]}, "events"),
        ({**GOOD, "events": ["*", "user.created"]}, "events"),
        ({**GOOD, "events": ["webhook.ping"]}, "events"),
        ({**GOOD, "description": "x" * 501}, "description"),
        ({**GOOD, "headers": ["X-A"]}, "headers"),
        ({**GOOD, "headers": {"Bad Header": "v"}}, "headers"),
        ({**GOOD, "headers": {"X-A": "line\r\nInjected: 1"}}, "headers"),
        ({**GOOD, "headers": {"X-A": 5}}, "headers"),
        ({**GOOD, "headers": {f"X-H{i}": "v" for i in range(21)}}, "headers"),
        ({**GOOD, "enabled": "yes"}, "enabled"),
        ({**GOOD, "secret": "whsec_mine"}, "secret"),
    ],
)
async def test_bad_bodies_are_400s_naming_the_field(events_app, body, field) -> None:
    client, admin = await events_app()
    resp = await client.post("/api/v1/webhooks", json=body, headers=admin)
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["error"]["details"]["field"] == field
    assert await client.app[DB].fetchval("SELECT COUNT(*) FROM webhooks") == 0


@pytest.mark.parametrize("name", ["webhook-signature", "Webhook-Id", "webhook-timestamp", "webhook-anything",
                                  "Content-Type", "User-Agent", "Host", "Content-Length", "Transfer-Encoding"])
async def test_reserved_headers_are_refused(events_app, name) -> None:
    client, admin = await events_app()
    resp = await client.post("/api/v1/webhooks", json={**GOOD, "headers": {name: "v"}}, headers=admin)
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["code"] == "reserved_header" and error["details"]["header"] == name
    created = await (await client.post("/api/v1/webhooks", json=GOOD, headers=admin)).json()
    resp = await client.patch(f"/api/v1/webhooks/{created['data']['id']}", json={"headers": {name: "v"}},
                              headers=admin)
    assert resp.status == 400


async def test_only_system_admins(events_app, make_user) -> None:
    client, admin = await events_app()
    created = (await (await client.post("/api/v1/webhooks", json=GOOD, headers=admin)).json())["data"]
    paths = [("GET", "/api/v1/webhooks"), ("POST", "/api/v1/webhooks"), ("GET", f"/api/v1/webhooks/{created['id']}"),
             ("PATCH", f"/api/v1/webhooks/{created['id']}"), ("DELETE", f"/api/v1/webhooks/{created['id']}"),
             ("POST", f"/api/v1/webhooks/{created['id']}/rotate-secret"),
             ("GET", f"/api/v1/webhooks/{created['id']}/deliveries"),
             ("POST", f"/api/v1/webhooks/{created['id']}/deliveries/1/redeliver"),
             ("POST", f"/api/v1/webhooks/{created['id']}/ping")]
    for role in ("learner", "facility_admin", "department_admin"):
        user = as_user(await make_user(client, role=role))
        for method, path in paths:
            resp = await client.request(method, path, json=GOOD, headers=user)
            assert resp.status == 403, (role, method, path, resp.status)
    for method, path in paths:
        resp = await client.request(method, path, json=GOOD)
        assert resp.status == 401, (method, path, resp.status)
    assert await client.app[DB].fetchval("SELECT COUNT(*) FROM webhooks") == 1


async def test_secret_is_shown_once_stored_encrypted_and_rotates(events_app) -> None:
    client, admin = await events_app()
    resp = await client.post("/api/v1/webhooks", json=GOOD, headers=admin)
    assert resp.status == 201
    data = (await resp.json())["data"]
    secret = data["secret"]
    assert secret.startswith("whsec_")
    assert data["events"] == ["user.created", "video.available"] and data["headers"] == {"X-Api-Key": "k-123"}
    stored = await client.app[DB].fetchval("SELECT secret FROM webhooks WHERE id = ?", (data["id"],))
    assert stored.startswith("v1:") and secret[6:] not in stored
    for path in ("/api/v1/webhooks", f"/api/v1/webhooks/{data['id']}"):
        text = await (await client.get(path, headers=admin)).text()
        assert secret not in text and "secret\"" not in text.replace("previous_secret_until", "")
    resp = await client.post(f"/api/v1/webhooks/{data['id']}/rotate-secret", headers=admin)
    assert resp.status == 200
    rotated = (await resp.json())["data"]
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != secret
    assert rotated["previous_secret_until"] is not None
    listing = await (await client.get(f"/api/v1/webhooks/{data['id']}", headers=admin)).json()
    assert listing["data"]["secret_rotated_at"] is not None and "secret" not in listing["data"]


async def test_patch_delete_and_not_found(events_app) -> None:
    client, admin = await events_app()
    data = (await (await client.post("/api/v1/webhooks", json=GOOD, headers=admin)).json())["data"]
    resp = await client.patch(f"/api/v1/webhooks/{data['id']}", json={"events": ["*"], "enabled": False},
                              headers=admin)
    assert resp.status == 200
    patched = (await resp.json())["data"]
    assert patched["events"] == ["*"] and patched["enabled"] is False
    assert (await client.patch(f"/api/v1/webhooks/{data['id']}", json={}, headers=admin)).status == 400
    for bad in ("999", "abc", "1" * 20, "-1"):
        assert (await client.get(f"/api/v1/webhooks/{bad}", headers=admin)).status == 404
    assert (await client.get(f"/api/v1/webhooks/{data['id']}/deliveries?state=odd", headers=admin)).status == 400
    assert (await client.post(f"/api/v1/webhooks/{data['id']}/deliveries/77/redeliver",
                              headers=admin)).status == 404
    assert (await client.delete(f"/api/v1/webhooks/{data['id']}", headers=admin)).status == 204
    assert (await client.get(f"/api/v1/webhooks/{data['id']}", headers=admin)).status == 404
    assert (await client.post("/api/v1/webhooks", data=b"{not json", headers=admin)).status == 400


async def test_ping_is_delivered_signed_and_logged(events_app, receiver: Receiver) -> None:
    client, admin = await events_app()
    hook = await create_webhook(client, admin, receiver, events=["user.created"])
    resp = await client.post(f"/api/v1/webhooks/{hook['id']}/ping", headers=admin)
    assert resp.status == 202
    ping = (await resp.json())["data"]
    await receiver.wait_for(lambda: receiver.of_type("webhook.ping"))
    [got] = receiver.of_type("webhook.ping")
    assert got.msg_id == ping["event_id"] and got.data["webhook"]["id"] == hook["id"]
    assert got.headers["User-Agent"].startswith("appliance-webhooks/")
    assert got.headers["Content-Type"] == "application/json"
    log = (await (await client.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=admin)).json())["data"]
    assert log[0]["state"] == "succeeded" and log[0]["event_type"] == "webhook.ping"
    assert log[0]["log"][0]["status_code"] == 200 and log[0]["log"][0]["ok"] is True
    assert log[0]["log"][0]["response_excerpt"] == '{"ok": true}'
    # a redelivery sends the same webhook-id again
    resp = await client.post(f"/api/v1/webhooks/{hook['id']}/deliveries/{log[0]['id']}/redeliver", headers=admin)
    assert resp.status == 202
    await receiver.wait_for(lambda: receiver.counts[ping["event_id"]] == 2)
    assert receiver.bad == []
