"""Bad input from a Kolibri: the run fails cleanly with a clear error, the appliance keeps serving."""

import pytest

from appliance.keys import DB
from tests.connectors.kolibri_helpers import add_kolibri, queue_empty, run
from tests.connectors.misbehaving_kolibri import MisbehavingKolibri
from tests.sync.helpers import as_user, create_learner, wait_until


@pytest.fixture
async def standin():
    fake = await MisbehavingKolibri(users=5).start()
    yield fake
    await fake.stop()


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("missing_field", "'username' is missing"),
        ("wrong_type", "'id' is int"),
        ("duplicate", "listed user 00000000000000000000000000000001 twice"),
        ("never_ends", "claims 1000000000 pages for 5 users"),
        ("html", "with text/html, not JSON: '<html><body><h1>Welcome to the captive portal"),
        ("huge", "is 10485775 bytes, more than the 4 MiB allowed"),
        ("huge_chunked", "is more than the 4 MiB allowed"),
    ],
)
async def test_bad_answers_fail_the_run_with_a_clear_error_and_the_appliance_keeps_serving(
    sync_client, make_user, standin, fault, message
):
    client = await sync_client(per_page=2)
    admin_user = await make_user(client, role="system_admin")
    provider = await add_kolibri(client, admin_user, standin.base_url, {"username": "kadmin", "password": "good"},
                                 push_roster=False)
    assert (await run(client, admin_user, provider))["state"] == "succeeded"  # the stand-in behaves at first
    standin.fault = fault
    failed = await run(client, admin_user, provider)
    assert failed["state"] == "failed" and failed["stage"] == "users"
    assert len(failed["errors"]) == 1 and "BadAnswer: Kolibri" in failed["errors"][0]
    assert message in failed["errors"][0], failed["errors"]
    runs = await (await client.get("/api/v1/sync/runs", headers=as_user(admin_user))).json()
    assert message in runs["data"][0]["errors"][0]
    status = (await (await client.get("/api/v1/sync/status", headers=as_user(admin_user))).json())["data"][0]
    assert status["runtime_state"] == "ready"  # not a credentials problem, not an outage
    assert (await client.get("/healthz")).status == 200
    standin.fault = None
    assert (await run(client, admin_user, provider))["state"] == "succeeded"  # and it recovers


async def test_an_unusable_answer_to_a_push_is_a_dead_letter_and_the_queue_moves_on(sync_client, make_user, standin):
    client = await sync_client()
    admin_user = await make_user(client, role="system_admin")
    await add_kolibri(client, admin_user, standin.base_url, {"username": "kadmin", "password": "good"})
    standin.fault = "html_push"
    first = await create_learner(client, username="first.learner")
    db = client.app[DB]

    async def dead() -> bool:
        return bool(await db.fetchval("SELECT COUNT(*) FROM dead_letters"))

    await wait_until(dead, timeout=30, interval=0.2, message="dead letter")
    error = await db.fetchval("SELECT error FROM dead_letters")
    assert error.startswith("Kolibri answered POST /api/auth/facilityuser/ with text/html, not JSON:")
    assert "Proxy says hello" in error
    assert (await client.get("/healthz")).status == 200
    standin.fault = None
    second = await create_learner(client, username="second_learner")
    await wait_until(lambda: queue_empty(client, admin_user), timeout=30, interval=0.2)
    assert [c["id_number"] for c in standin.created] == [second["uuid"]]
    assert first["uuid"] not in {c["id_number"] for c in standin.created}


async def test_a_failed_report_leaves_the_activity_cursor_where_it_was(sync_client, make_user, standin):
    client = await sync_client(per_page=2)
    admin_user = await make_user(client, role="system_admin")
    provider = await add_kolibri(client, admin_user, standin.base_url, {"username": "kadmin", "password": "good"},
                                 push_roster=False)
    db = client.app[DB]
    learner = await make_user(client, username="user_1")
    assert (await run(client, admin_user, provider))["state"] == "succeeded"  # user_1 is matched by username

    async def cursor() -> str | None:
        return await db.fetchval(
            "SELECT value FROM sync_cursors WHERE provider_id = ? AND kind = 'activity_since'", (provider["id"],))

    standin.fault = "bad_csv"
    failed = await run(client, admin_user, provider, job="report")
    assert failed["state"] == "failed" and failed["stage"] == "activity"
    assert "non-numeric time spent: 'lots'" in failed["errors"][0]
    assert await cursor() is None
    assert not await db.fetchval("SELECT COUNT(*) FROM learner_progress")
    standin.fault = None
    assert (await run(client, admin_user, provider, job="report"))["state"] == "succeeded"
    first = await cursor()
    assert first is not None
    row = await db.fetchone("SELECT user_id, total_time, progress FROM learner_progress")
    assert (row["user_id"], row["total_time"], row["progress"]) == (learner["id"], 30, 0.5)
    standin.fault = "bad_csv"
    assert (await run(client, admin_user, provider, job="report"))["state"] == "failed"
    assert await cursor() == first
