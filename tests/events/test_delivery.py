"""Deliveries against a real receiver verifying with `standardwebhooks`: outages, failures, redirects, disable."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from appliance.db.events import EventType, add_event
from appliance.keys import BUS, DB
from tests.events.conftest import create_webhook
from tests.events.receiver import Receiver


async def emit(client: Any, count: int, event_type: EventType = EventType.LIBRARY_ADDED) -> list[str]:
    """Record `count` events the way a feature does (in a write transaction)."""
    ids = []
    async with client.app[DB].transaction() as tx:
        for i in range(count):
            ids.append(await add_event(tx, event_type, {"n": i}))
    return ids


async def deliveries(client: Any, admin: dict[str, str], hook_id: int, **query: Any) -> list[dict[str, Any]]:
    resp = await client.get(f"/api/v1/webhooks/{hook_id}/deliveries", params={"per_page": 100, **query},
                            headers=admin)
    assert resp.status == 200
    return (await resp.json())["data"]


async def test_domain_events_from_real_changes_arrive_verified(events_app, receiver: Receiver) -> None:
    client, admin = await events_app()
    await create_webhook(client, admin, receiver, events=["user.created", "user.updated", "user.deactivated"])
    other = Receiver()
    await other.start()
    try:
        await create_webhook(client, admin, other, events=["video.available"])
        resp = await client.post("/api/v1/users", json={"username": "ada", "role": "learner", "first_name": "Ada",
                                                         "password": "a long password 42"}, headers=admin)
        assert resp.status == 201, await resp.text()
        user = (await resp.json())["data"]["user"]
        assert (await client.patch(f"/api/v1/users/{user['id']}", json={"last_name": "Lovelace"},
                                   headers=admin)).status == 200
        assert (await client.delete(f"/api/v1/users/{user['id']}", headers=admin)).status == 200
        await receiver.wait_for(lambda: len(receiver.received) == 3)
        created, updated, deactivated = receiver.received
        assert created.type == "user.created" and created.data["user"]["username"] == "ada"
        assert "password_hash" not in created.data["user"]
        assert updated.type == "user.updated" and updated.data["changed"] == ["last_name"]
        assert deactivated.type == "user.deactivated" and deactivated.data["user"]["active"] is False
        assert len({r.msg_id for r in receiver.received}) == 3
        assert other.received == []  # it subscribed to other types
        # the same events are on JetStream under appliance.events.<type>
        for _ in range(50):
            try:
                msg = await client.app[BUS].js.get_last_msg("EVENTS", "appliance.events.user.deactivated")
                break
            except Exception:  # noqa: BLE001 - not relayed yet
                await asyncio.sleep(0.1)
        body = json.loads(msg.data)
        assert body["id"] == deactivated.msg_id and body["type"] == "user.deactivated"
        assert msg.headers["Nats-Msg-Id"] == deactivated.msg_id
    finally:
        await other.stop()
    assert receiver.bad == []


async def test_events_before_the_webhook_existed_are_not_sent(events_app, receiver: Receiver) -> None:
    client, admin = await events_app()
    await emit(client, 5)
    await asyncio.sleep(0.5)
    await create_webhook(client, admin, receiver)
    ids = await emit(client, 3)
    await receiver.wait_for(lambda: set(receiver.counts) == set(ids))
    await asyncio.sleep(0.5)
    assert set(receiver.counts) == set(ids)


@pytest.mark.slow
async def test_receiver_down_for_a_while_then_back_gets_every_event(events_app, receiver: Receiver) -> None:
    client, admin = await events_app()
    hook = await create_webhook(client, admin, receiver)
    await receiver.stop()
    ids = await emit(client, 200)
    # a few seconds of refused connections: attempts fail, retries back off, the webhook is failing
    for _ in range(100):
        current = (await (await client.get(f"/api/v1/webhooks/{hook['id']}", headers=admin)).json())["data"]
        if current["failure_count"] >= 3:
            break
        await asyncio.sleep(0.1)
    assert current["failure_count"] >= 3 and current["failing_since"]
    await asyncio.sleep(2)
    more = await emit(client, 100)
    await receiver.start()
    await receiver.wait_for(lambda: set(receiver.counts) >= set(ids + more), timeout=60)
    assert receiver.bad == []
    log = await deliveries(client, admin, hook["id"], state="pending")
    for _ in range(50):
        if not log:
            break
        await asyncio.sleep(0.1)
        log = await deliveries(client, admin, hook["id"], state="pending")
    assert log == []
    current = (await (await client.get(f"/api/v1/webhooks/{hook['id']}", headers=admin)).json())["data"]
    assert current["failure_count"] == 0 and current["enabled"] is True


@pytest.mark.slow
async def test_receiver_failing_a_fifth_of_requests_gets_each_event_and_the_log_shows_retries(
    events_app, receiver: Receiver
) -> None:
    client, admin = await events_app()
    receiver.fail_every = 5
    hook = await create_webhook(client, admin, receiver)
    ids = await emit(client, 300)
    await receiver.wait_for(lambda: set(receiver.counts) >= set(ids), timeout=90)
    assert receiver.failed_on_purpose >= 60
    assert receiver.bad == []
    retried = []
    page = 1
    while True:
        resp = await client.get(f"/api/v1/webhooks/{hook['id']}/deliveries",
                                params={"per_page": 100, "page": page}, headers=admin)
        body = await resp.json()
        retried += [d for d in body["data"] if d["attempts"] > 1]
        if not body["meta"]["has_next"]:
            break
        page += 1
    assert len(retried) >= 50
    sample = retried[0]
    assert [a["attempt"] for a in sample["log"]] == list(range(1, sample["attempts"] + 1))
    assert sample["log"][0]["status_code"] == 500 and sample["log"][0]["ok"] is False
    assert "failing on purpose" in sample["log"][0]["response_excerpt"]
    assert sample["log"][-1]["status_code"] == 200


async def test_redirects_are_not_followed_and_answers_are_capped(events_app, receiver: Receiver) -> None:
    client, admin = await events_app(webhooks={"max_response_bytes": 100})
    target = Receiver()
    await target.start()
    try:
        receiver.redirect_to = target.url
        hook = await create_webhook(client, admin, receiver)
        target.secrets = receiver.secrets
        [event_id] = await emit(client, 1)
        for _ in range(100):
            log = await deliveries(client, admin, hook["id"])
            if log and log[0]["log"]:
                break
            await asyncio.sleep(0.1)
        assert log[0]["log"][0]["status_code"] == 302 and "redirects are not followed" in log[0]["last_error"]
        assert target.requests == 0
        receiver.redirect_to = None
        receiver.big_body = 5_000_000
        await receiver.wait_for(lambda: receiver.counts[event_id] >= 1, timeout=30)
        for _ in range(100):
            log = await deliveries(client, admin, hook["id"])
            if log[0]["state"] == "succeeded":
                break
            await asyncio.sleep(0.1)
        assert log[0]["state"] == "succeeded"
        assert len(log[0]["log"][-1]["response_excerpt"]) == 100
    finally:
        await target.stop()


@pytest.mark.slow
async def test_consecutive_failures_disable_the_webhook_and_raise_webhook_disabled(
    events_app, receiver: Receiver
) -> None:
    client, admin = await events_app(webhooks={"disable_after_failures": 5, "disable_after_s": 1.0,
                                               "retry_initial_s": 0.1, "retry_max_interval_s": 0.3})
    watcher = Receiver()
    await watcher.start()
    try:
        await create_webhook(client, admin, watcher, events=["webhook.disabled"])
        receiver.status = 503
        hook = await create_webhook(client, admin, receiver)
        await emit(client, 1)
        await watcher.wait_for(lambda: watcher.of_type("webhook.disabled"), timeout=30)
        [disabled] = watcher.of_type("webhook.disabled")
        assert disabled.data["webhook"] == {"id": hook["id"], "url": receiver.url}
        assert disabled.data["failure_count"] >= 5
        current = (await (await client.get(f"/api/v1/webhooks/{hook['id']}", headers=admin)).json())["data"]
        assert current["enabled"] is False and "consecutive failed deliveries" in current["disabled_reason"]
        # disabled: no more attempts; enabling again clears the streak and delivery resumes
        before = receiver.requests
        await asyncio.sleep(1.0)
        assert receiver.requests == before
        receiver.status = 200
        resp = await client.patch(f"/api/v1/webhooks/{hook['id']}", json={"enabled": True}, headers=admin)
        assert (await resp.json())["data"]["failure_count"] == 0
        await receiver.wait_for(lambda: len(receiver.counts) == 1, timeout=30)
    finally:
        await watcher.stop()


async def test_deleting_a_webhook_with_requests_in_flight_harms_nothing(events_app, receiver: Receiver) -> None:
    client, admin = await events_app()
    slow = Receiver(delay_s=1.0)
    await slow.start()
    try:
        doomed = await create_webhook(client, admin, slow)
        kept = await create_webhook(client, admin, receiver)
        first = await emit(client, 20)
        await slow.wait_for(lambda: slow.requests >= 5, timeout=30)
        assert (await client.delete(f"/api/v1/webhooks/{doomed['id']}", headers=admin)).status == 204
        await asyncio.sleep(1.5)  # the requests in flight answer; their results find no delivery to record
        later = await emit(client, 20)
        await receiver.wait_for(lambda: set(receiver.counts) >= set(first + later))
        assert await client.app[DB].fetchval("SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = ?",
                                             (doomed["id"],)) == 0
        for _ in range(100):  # the results of the kept webhook are recorded (the writer did not get stuck)
            done = await deliveries(client, admin, kept["id"], state="succeeded")
            if len(done) == 40:
                break
            await asyncio.sleep(0.1)
        assert len(done) == 40
    finally:
        await slow.stop()
