"""Moodle through the whole engine: a provider of type moodle, pushes exactly once, pulls, auth_failed, dead
letters and the unmatched-users queue, against the fake Moodle."""

from collections.abc import AsyncIterator

import pytest

from appliance.keys import DB
from tests.fakes.moodle import FakeMoodle
from tests.sync.conftest import admin, sync_client  # noqa: F401  (fixtures shared with the sync tests)
from tests.sync.helpers import as_user, create_learner, wait_until
from tests.sync.test_pull import run_and_wait


@pytest.fixture
async def moodle() -> AsyncIterator[FakeMoodle]:
    fake = await FakeMoodle().start()
    yield fake
    await fake.stop()


async def add_moodle(client, user, moodle, token="moodletoken", **extra):  # noqa: S107
    body = {"type": "moodle", "name": "Moodle", "base_url": moodle.base_url, "credentials": {"token": token},
            **extra}
    resp = await client.post("/api/v1/providers", json=body, headers=as_user(user))
    assert resp.status == 201, await resp.text()
    return (await resp.json())["data"]


async def status_of(client, user) -> dict:
    return (await (await client.get("/api/v1/sync/status", headers=as_user(user))).json())["data"][0]


async def test_credentials_of_the_wrong_shape_are_refused(admin, moodle):  # noqa: F811
    client, user = admin
    body = {"type": "moodle", "name": "M", "base_url": moodle.base_url, "credentials": {"access_token": "x"}}
    resp = await client.post("/api/v1/providers", json=body, headers=as_user(user))
    assert resp.status == 400
    assert "token" in (await resp.json())["error"]["message"]


async def test_learners_and_enrolments_reach_moodle_exactly_once(admin, moodle):  # noqa: F811
    client, user = admin
    provider = await add_moodle(client, user, moodle)
    learners = [await create_learner(client, first_name=f"L{i}") for i in range(10)]
    await wait_until(lambda: len(moodle.state.user_creates) == 10, message="learners in Moodle")
    assert set(moodle.state.user_creates) == {lr["uuid"] for lr in learners}
    course = moodle.state.add_course("Algebra")
    db = client.app[DB]
    await db.execute("INSERT INTO courses (provider_id, external_id, name) VALUES (?, ?, 'Algebra')",
                     (provider["id"], str(course["id"])))
    local_course = await db.fetchval("SELECT id FROM courses")
    resp = await client.post(f"/api/v1/courses/{local_course}/enrollments", json={"user_id": learners[0]["id"]},
                             headers=as_user(user))
    assert resp.status == 201, await resp.text()
    await wait_until(lambda: len(moodle.state.enrollment_creates) == 1)
    moodle_user = moodle.state.find_user("idnumber", learners[0]["uuid"])[0]
    assert moodle.state.enrolments[course["id"]] == {moodle_user["id"]: 5}
    resp = await client.delete(f"/api/v1/courses/{local_course}/enrollments", json={"user_id": learners[0]["id"]},
                               headers=as_user(user))
    assert resp.status == 200
    await wait_until(lambda: len(moodle.state.enrollment_deletes) == 1)
    await wait_until(lambda: _depth_zero(client, user))
    status = await status_of(client, user)
    assert (status["uplink"], status["runtime_state"], status["dead_letters"]) == ("up", "ready", 0)
    assert max(moodle.state.user_creates.values()) == 1
    assert not moodle.state.rejected_writes
    mapped = await db.fetchval("SELECT COUNT(*) FROM provider_user_mappings WHERE matched_by = 'pushed'")
    assert mapped == 10


async def _depth_zero(client, user) -> bool:
    return (await status_of(client, user))["queue_depth"] == 0


async def test_a_bad_token_is_auth_failed_until_credentials_change(admin, moodle):  # noqa: F811
    client, user = admin
    provider = await add_moodle(client, user, moodle, token="expired")  # noqa: S106
    await create_learner(client)
    await wait_until(lambda: _runtime(client, user, "auth_failed"))
    assert "invalidtoken" in (await status_of(client, user))["last_error"]
    assert not moodle.state.user_creates
    resp = await client.patch(f"/api/v1/providers/{provider['id']}", json={"credentials": {"token": "moodletoken"}},
                              headers=as_user(user))
    assert resp.status == 200
    await wait_until(lambda: len(moodle.state.user_creates) == 1, timeout=20)


async def _runtime(client, user, value) -> bool:
    return (await status_of(client, user))["runtime_state"] == value


async def test_a_refused_learner_becomes_a_dead_letter_with_moodles_error(admin, moodle):  # noqa: F811
    client, user = admin
    moodle.debug = True
    await add_moodle(client, user, moodle)
    taken = await create_learner(client, email="shared@example.org")
    moodle.state.add_user("someoneelse", "Some", "One", email="shared@example.org")  # email already in use
    fine = await create_learner(client)
    await wait_until(lambda: fine["uuid"] in moodle.state.user_creates)
    await wait_until(lambda: _dead(client, user))
    letters = (await (await client.get("/api/v1/sync/dead-letters", headers=as_user(user))).json())["data"]
    assert [letter["aggregate_id"] for letter in letters] == [taken["uuid"]]
    assert letters[0]["error_body"]["errorcode"] == "invalidparameter"
    assert "Email address already exists" in letters[0]["error"]


async def _dead(client, user) -> bool:
    return (await status_of(client, user))["dead_letters"] == 1


async def test_pull_reads_courses_users_enrolments_and_milestones(admin, moodle):  # noqa: F811
    client, user = admin
    known = await create_learner(client)
    provider = await add_moodle(client, user, moodle, push_roster=False)
    algebra = moodle.state.add_course("Algebra")
    moodle.state.add_course("Hidden", visible=0)
    ada = moodle.state.add_user("ada", "Ada", "Moodle", idnumber=known["uuid"])
    strangers = [moodle.state.add_user(f"x{i}", "X", str(i)) for i in range(5)]
    for person in (ada, *strangers):
        moodle.state.enrol(algebra["id"], person["id"])
    moodle.state.complete(algebra["id"], ada["id"], 301, modname="quiz", state=2, at=1_717_200_000)
    moodle.state.grade(algebra["id"], ada["id"], "Quiz", 8.0, at=1_717_200_000)
    run = await run_and_wait(client, user, provider["id"])
    assert run["state"] == "succeeded", run["errors"]
    db = client.app[DB]
    courses = {r["external_id"]: r["state"] for r in await db.fetchall("SELECT external_id, state FROM courses")}
    assert courses == {str(algebra["id"]): "available", str(algebra["id"] + 1): "unpublished"}  # no site course
    assert await db.fetchval("SELECT user_id FROM provider_user_mappings WHERE external_user_id = ?",
                             (str(ada["id"]),)) == known["id"]
    assert await db.fetchval("SELECT COUNT(*) FROM enrollments WHERE user_id = ?", (known["id"],)) == 1
    milestones = {(r["type"], r["score"]) for r in await db.fetchall("SELECT type, score FROM milestones")}
    assert milestones == {("quiz_submission", None), ("grade_received", 8.0)}
    resp = await client.get(f"/api/v1/providers/{provider['id']}/unmatched-users", headers=as_user(user))
    assert resp.status == 200
    unmatched = (await resp.json())["data"]
    assert sorted(u["external_login_id"] for u in unmatched) == [f"x{i}" for i in range(5)]
    assert {u["external_name"] for u in unmatched} == {f"X {i}" for i in range(5)}
