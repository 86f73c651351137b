"""Brightspace through the whole engine: the same guarantees as Canvas, and bad upstream answers."""

import asyncio

import pytest

from appliance.keys import DB
from appliance.sync.keys import ENGINE, VAULT
from tests.sync.helpers import as_user, create_learner, wait_until


async def add_provider(client, admin_user, fake, credentials=None, **fields):
    body = {"type": "brightspace", "name": fields.pop("name", "Brightspace"), "base_url": fake.base_url,
            "credentials": credentials or fake.id_key_credentials(), **fields}
    resp = await client.post("/api/v1/providers", json=body, headers=as_user(admin_user))
    assert resp.status == 201, await resp.text()
    return (await resp.json())["data"]


async def status_of(client, user) -> dict:
    return (await (await client.get("/api/v1/sync/status", headers=as_user(user))).json())["data"][0]


async def run_and_wait(client, user, provider_id, job="pull") -> dict:
    resp = await client.post(f"/api/v1/providers/{provider_id}/sync", json={"job": job}, headers=as_user(user))
    assert resp.status == 202
    run_id = (await resp.json())["data"]["run_id"]

    async def finished() -> bool:
        state = await client.app[DB].fetchval("SELECT state FROM sync_runs WHERE id = ?", (run_id,))
        return state in ("succeeded", "failed")

    await wait_until(finished, timeout=60)
    return dict(await client.app[DB].fetchone("SELECT * FROM sync_runs WHERE id = ?", (run_id,)))


async def test_credentials_are_checked_per_kind(admin, brightspace):
    client, user = admin
    for bad in ({"app_id": "a", "app_key": "b"}, {"client_id": "c", "refresh_token": "r"},
                {**brightspace.id_key_credentials(), "refresh_token": "r"},
                {**brightspace.id_key_credentials(), "org_unit_id": "six"}, {"access_token": "x"}):
        body = {"type": "brightspace", "name": "B", "base_url": brightspace.base_url, "credentials": bad}
        resp = await client.post("/api/v1/providers", json=body, headers=as_user(user))
        assert resp.status == 400, bad
        assert "credentials" in (await resp.json())["error"]["message"]
    await add_provider(client, user, brightspace, {**brightspace.id_key_credentials(), "org_unit_id": "6606"})


async def test_learners_and_enrollments_reach_brightspace_exactly_once_and_wait_while_down(admin, brightspace):
    client, user = admin
    provider = await add_provider(client, user, brightspace)
    learners = [await create_learner(client, first_name=f"L{i}") for i in range(8)]
    await wait_until(lambda: len(brightspace.user_creates) == 8, message="learners upstream")
    assert set(brightspace.user_creates) == {lr["uuid"] for lr in learners}
    assert max(brightspace.user_creates.values()) == 1

    course = brightspace.add_course("Biology")
    db = client.app[DB]
    await db.execute("INSERT INTO courses (provider_id, external_id, name) VALUES (?, ?, 'Biology')",
                     (provider["id"], course["Identifier"]))
    local_course = await db.fetchval("SELECT id FROM courses WHERE external_id = ?", (course["Identifier"],))
    resp = await client.post(f"/api/v1/courses/{local_course}/enrollments", json={"user_id": learners[0]["id"]},
                             headers=as_user(user))
    assert resp.status == 201, await resp.text()
    await wait_until(lambda: sum(brightspace.enroll_creates.values()) == 1)

    await brightspace.go_down()
    await wait_until(lambda: _is(client, user, "uplink", "down"))
    later = [await create_learner(client) for _ in range(5)]
    await asyncio.sleep(1.0)
    assert (await status_of(client, user))["queue_depth"] == 5
    await brightspace.go_up()
    await wait_until(lambda: len(brightspace.user_creates) == 13, timeout=30)
    assert {lr["uuid"] for lr in later} <= set(brightspace.user_creates)
    assert await db.fetchval("SELECT MAX(attempts) FROM push_deliveries") == 1  # waiting spent no attempt
    assert max(brightspace.user_creates.values()) == 1
    assert not brightspace.rejected_writes


async def _is(client, user, key, value) -> bool:
    return (await status_of(client, user))[key] == value


async def test_bad_keys_put_the_provider_in_auth_failed_until_fixed(admin, brightspace):
    client, user = admin
    provider = await add_provider(client, user, brightspace, {**brightspace.id_key_credentials(), "app_key": "x"})
    await create_learner(client)
    await wait_until(lambda: _is(client, user, "runtime_state", "auth_failed"))
    assert "Invalid token" in (await status_of(client, user))["last_error"]
    assert not brightspace.user_creates
    resp = await client.patch(f"/api/v1/providers/{provider['id']}",
                              json={"credentials": brightspace.id_key_credentials()}, headers=as_user(user))
    assert resp.status == 200
    await wait_until(lambda: len(brightspace.user_creates) == 1, timeout=20)


async def test_a_rejected_learner_is_a_dead_letter_with_brightspaces_error(admin, brightspace):
    client, user = admin
    await add_provider(client, user, brightspace)
    brightspace.add_user("Someone", user_name="taken.name")
    await create_learner(client, username="taken.name")
    ok = await create_learner(client)
    await wait_until(lambda: ok["uuid"] in brightspace.user_creates)

    async def dead() -> list:
        return (await (await client.get("/api/v1/sync/dead-letters", headers=as_user(user))).json())["data"]

    await wait_until(lambda: _nonempty(dead()))
    letter = (await dead())[0]
    assert letter["status_code"] == 400
    assert "Username is already in use" in str(letter["error_body"])


async def _nonempty(coro) -> bool:
    return bool(await coro)


async def test_pull_reads_users_courses_learners_and_grades(admin, brightspace):
    client, user = admin
    brightspace.page_size = 25
    mine = await create_learner(client)
    provider = await add_provider(client, user, brightspace, push_roster=False)
    upstream = brightspace.add_user("Ada", "L", org_defined_id=mine["uuid"])
    others = [brightspace.add_user(f"O{i}") for i in range(60)]
    course = brightspace.add_course("Biology")
    ou = int(course["Identifier"])
    brightspace.enroll(ou, upstream["UserId"])
    for other in others[:40]:
        brightspace.enroll(ou, other["UserId"])
    quiz = brightspace.add_grade(ou, "Quiz 1")
    brightspace.set_grade(ou, quiz, upstream["UserId"], 9)
    run = await run_and_wait(client, user, provider["id"])
    assert run["state"] == "succeeded", run["errors"]
    db = client.app[DB]
    assert await db.fetchval("SELECT COUNT(*) FROM provider_user_mappings") == 61
    assert await db.fetchval("SELECT matched_by FROM provider_user_mappings WHERE user_id = ?", (mine["id"],)) == (
        "sis_id")
    assert await db.fetchval("SELECT COUNT(*) FROM enrollments WHERE user_id = ?", (mine["id"],)) == 1
    assert await db.fetchval("SELECT score FROM milestones WHERE user_id = ?", (mine["id"],)) == 90.0
    unmatched = await (await client.get(f"/api/v1/providers/{provider['id']}/unmatched-users",
                                        headers=as_user(user))).json()
    assert unmatched["meta"]["total"] == 60


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("html", "expected JSON, got text/html"),
        ("huge", "larger than"),
        ("huge_stream", "larger than"),
        ("loop", "paging loop"),
        ("missing_fields", "user.UserId is missing"),
        ("wrong_types", "user.FirstName is not text"),
    ],
)
async def test_bad_upstream_answers_fail_the_run_cleanly_and_the_appliance_keeps_serving(
    admin, brightspace, mode, message
):
    client, user = admin
    provider = await add_provider(client, user, brightspace, push_roster=False)
    for i in range(30):
        brightspace.add_user(f"U{i}")
    brightspace.bad_users = mode
    run = await run_and_wait(client, user, provider["id"])
    assert run["state"] == "failed"
    assert "BadAnswer" in run["errors"] and message in run["errors"]
    assert run["stage"] == "users"
    # Nothing half-read: only the valid pages before a loop was noticed (upserts, harmless to repeat).
    stored = await client.app[DB].fetchval("SELECT COUNT(*) FROM provider_user_mappings")
    assert stored == (30 if mode == "loop" else 0)
    runs = await (await client.get("/api/v1/sync/runs", headers=as_user(user))).json()
    assert message in str(runs["data"][0]["errors"])
    assert (await client.get("/api/v1/providers", headers=as_user(user))).status == 200
    brightspace.bad_users = None
    assert (await run_and_wait(client, user, provider["id"]))["state"] == "succeeded"


async def test_oauth_rotation_is_stored_on_the_provider_without_restarting_its_worker(admin, brightspace):
    client, user = admin
    creds = brightspace.oauth_credentials()
    provider = await add_provider(client, user, brightspace, creds)
    await wait_until(lambda: _is(client, user, "uplink", "up"))
    engine = client.app[ENGINE]
    worker = engine.workers[provider["id"]]
    db, vault = client.app[DB], client.app[VAULT]
    stored = vault.open(await db.fetchval("SELECT credentials FROM providers WHERE id = ?", (provider["id"],)))
    assert stored["refresh_token"] != creds["refresh_token"]
    assert stored["refresh_token"] in brightspace.live_refresh_tokens()
    assert creds["refresh_token"] not in brightspace.live_refresh_tokens()
    brightspace.access_tokens.clear()  # force another rotation
    await create_learner(client)
    await wait_until(lambda: len(brightspace.user_creates) == 1)
    await asyncio.sleep(2.5)  # a reconcile pass
    assert brightspace.refreshes == 2
    assert engine.workers[provider["id"]] is worker  # its own rotation did not restart it
    stored = vault.open(await db.fetchval("SELECT credentials FROM providers WHERE id = ?", (provider["id"],)))
    assert stored["refresh_token"] in brightspace.live_refresh_tokens()
    # The test endpoint rotates too, and stores what it got.
    brightspace.access_tokens.clear()
    result = await (await client.post(f"/api/v1/providers/{provider['id']}/test", headers=as_user(user))).json()
    assert result["data"]["credentials_valid"] is True
    stored = vault.open(await db.fetchval("SELECT credentials FROM providers WHERE id = ?", (provider["id"],)))
    assert stored["refresh_token"] in brightspace.live_refresh_tokens()
    assert brightspace.refreshes == 3


async def test_a_rotation_never_overwrites_credentials_an_admin_stored_meanwhile(admin, brightspace):
    from appliance.sync import store

    client, user = admin
    provider = await add_provider(client, user, brightspace, brightspace.oauth_credentials())
    db, vault = client.app[DB], client.app[VAULT]
    before = await db.fetchval("SELECT credentials FROM providers WHERE id = ?", (provider["id"],))
    admins = vault.seal(brightspace.oauth_credentials())
    await db.execute("UPDATE providers SET credentials = ? WHERE id = ?", (admins, provider["id"]))
    with pytest.raises(store.CredentialsReplaced):
        await store.save_sealed_credentials(db, provider["id"], vault.seal({"refresh_token": "x"}), expected=before)
    assert await db.fetchval("SELECT credentials FROM providers WHERE id = ?", (provider["id"],)) == admins


async def test_random_failures_and_throttling_lose_nothing(admin, brightspace):
    client, user = admin
    await add_provider(client, user, brightspace)
    await wait_until(lambda: _is(client, user, "uplink", "up"))
    brightspace.fail_share(0.2)
    learners = [await create_learner(client) for _ in range(30)]
    await wait_until(lambda: len(brightspace.user_creates) == 30, timeout=90)
    assert set(brightspace.user_creates) == {lr["uuid"] for lr in learners}
    assert max(brightspace.user_creates.values()) == 1
    assert sum(brightspace.injected.values()) > 0
