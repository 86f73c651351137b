"""Uplink down, credentials rejected, records rejected, throttling: the engine waits, parks or slows, never loses."""

import asyncio

from appliance.keys import DB
from tests.sync.helpers import as_user, create_learner, wait_until
from tests.sync.test_push import add_provider


async def status_of(client, user) -> dict:
    return (await (await client.get("/api/v1/sync/status", headers=as_user(user))).json())["data"][0]


async def test_queue_waits_while_down_without_spending_attempts_then_drains(admin, canvas):
    client, user = admin
    await add_provider(client, user, canvas)
    await wait_until(lambda: _uplink(client, user, "up"))
    await canvas.down()
    learners = [await create_learner(client) for _ in range(20)]
    await wait_until(lambda: _uplink(client, user, "down"))
    await asyncio.sleep(1.0)
    status = await status_of(client, user)
    assert status["queue_depth"] == 20
    assert status["runtime_state"] == "retrying"
    assert status["oldest_pending_age_s"] >= 0
    assert sum(canvas.requests.values()) <= 3  # at most the requests that discovered the outage
    await canvas.up()
    await wait_until(lambda: len(canvas.state.user_creates) == 20, timeout=30)
    assert set(canvas.state.user_creates) == {lr["uuid"] for lr in learners}
    await wait_until(lambda: _depth(client, user, 0))  # the ledger is written after the batch's calls
    attempts = await client.app[DB].fetchval("SELECT MAX(attempts) FROM push_deliveries")
    assert attempts == 1  # waiting for the uplink spent no attempt


async def _uplink(client, user, value) -> bool:
    return (await status_of(client, user))["uplink"] == value


async def _depth(client, user, value) -> bool:
    return (await status_of(client, user))["queue_depth"] == value


async def test_401_puts_provider_in_auth_failed_until_credentials_change(admin, canvas):
    client, user = admin
    provider = await add_provider(client, user, canvas, token="expired")
    await create_learner(client)
    await wait_until(lambda: _runtime(client, user, "auth_failed"))
    status = await status_of(client, user)
    assert "Invalid access token" in status["last_error"]
    assert status["queue_depth"] == 1
    assert not canvas.state.user_creates
    fixed = {"credentials": {"access_token": "canvas-token"}}
    resp = await client.patch(f"/api/v1/providers/{provider['id']}", json=fixed, headers=as_user(user))
    assert resp.status == 200
    await wait_until(lambda: len(canvas.state.user_creates) == 1, timeout=20)
    await wait_until(lambda: _runtime(client, user, "ready"))


async def _runtime(client, user, value) -> bool:
    return (await status_of(client, user))["runtime_state"] == value


async def test_rejected_record_goes_to_dead_letters_and_can_be_retried(admin, canvas):
    client, user = admin
    await add_provider(client, user, canvas)
    learner = await create_learner(client)
    # Someone already holds this login id upstream (with another SIS id): Canvas refuses the create.
    squatter = canvas.state.add_user("Squatter", sis_user_id="other", login_id=learner["uuid"])
    fine = await create_learner(client)
    await wait_until(lambda: _dead(client, user, 1))
    letters = (await (await client.get("/api/v1/sync/dead-letters", headers=as_user(user))).json())["data"]
    assert len(letters) == 1
    letter = letters[0]
    assert letter["status_code"] == 400
    assert letter["aggregate_id"] == learner["uuid"]
    assert letter["error_body"]["errors"]["pseudonym"]["unique_id"][0]["type"] == "taken"
    # One bad record does not block the queue: the other learner reaches Canvas and its delivery settles
    # (the settle is written just after Canvas answers, so it is waited for, not assumed).
    await wait_until(lambda: fine["uuid"] in canvas.state.user_creates)
    await wait_until(lambda: _depth(client, user, 0), message="queue drained")
    # The admin fixes the upstream side and retries.
    canvas.state.logins = {k: v for k, v in canvas.state.logins.items() if v["user_id"] != squatter["id"]}
    resp = await client.post(f"/api/v1/sync/dead-letters/{letter['id']}/retry", headers=as_user(user))
    assert resp.status == 202
    assert (await client.post(f"/api/v1/sync/dead-letters/{letter['id']}/retry", headers=as_user(user))).status == 409
    await wait_until(lambda: learner["uuid"] in canvas.state.user_creates, timeout=20)
    await wait_until(lambda: _dead(client, user, 0))
    resolved = await client.get("/api/v1/sync/dead-letters?state=resolved", headers=as_user(user))
    assert len((await resolved.json())["data"]) == 1
    assert (await client.get("/api/v1/sync/dead-letters?state=bogus", headers=as_user(user))).status == 400


async def _depth(client, user, value) -> bool:
    return (await status_of(client, user))["queue_depth"] == value


async def _dead(client, user, value) -> bool:
    return (await status_of(client, user))["dead_letters"] == value


async def test_throttling_is_respected_and_nothing_duplicates(admin, canvas):
    client, user = admin
    canvas.throttle(hwm=150, outflow=300.0, cost=10.0)  # ~30 requests/s sustained; 8 in flight overflow it
    await add_provider(client, user, canvas)
    learners = [await create_learner(client) for _ in range(40)]
    await wait_until(lambda: len(canvas.state.user_creates) == 40, timeout=60)
    assert canvas.injected["bucket"] > 0  # it was throttled...
    assert set(canvas.state.user_creates) == {lr["uuid"] for lr in learners}
    assert max(canvas.state.user_creates.values()) == 1  # ...and still exactly once
    assert await client.app[DB].fetchval("SELECT COUNT(*) FROM dead_letters") == 0
