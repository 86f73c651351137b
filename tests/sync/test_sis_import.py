"""Batch path: a large backlog of new learners goes to Canvas as SIS imports, still exactly once."""

from appliance.keys import DB
from tests.sync.helpers import as_user, create_learner, wait_until
from tests.sync.test_push import add_provider


async def test_backlog_goes_up_as_sis_imports(sync_client, make_user, canvas):
    client = await sync_client(sis_batch_min=20, push_batch=100)
    admin = await make_user(client, role="system_admin")
    await canvas.down()
    await add_provider(client, admin, canvas)
    learners = [await create_learner(client) for _ in range(120)]
    await wait_until(lambda: _relayed(client), timeout=10)  # the whole backlog is queued before Canvas returns
    await canvas.up()
    await wait_until(lambda: len(canvas.state.user_creates) == 120, timeout=30)
    assert set(canvas.state.user_creates) == {lr["uuid"] for lr in learners}
    assert max(canvas.state.user_creates.values()) == 1
    assert 1 <= canvas.sis_import_posts <= 6
    assert canvas.requests["POST /api/v1/accounts/{account_id}/users"] == 0
    upstream = canvas.state.find_user(f"sis_user_id:{learners[0]['uuid']}")
    assert upstream["sortable_name"] == f"{learners[0]['last_name']}, {learners[0]['first_name']}"

    async def settled() -> bool:
        return await client.app[DB].fetchval("SELECT COUNT(*) FROM push_deliveries WHERE state = 'done'") == 120

    await wait_until(settled, timeout=10)


async def test_import_with_problems_falls_back_to_one_by_one_without_duplicates(sync_client, make_user, canvas):
    client = await sync_client(sis_batch_min=20, push_batch=100)
    admin = await make_user(client, role="system_admin")
    await canvas.down()
    await add_provider(client, admin, canvas)
    learners = [await create_learner(client) for _ in range(30)]
    canvas.state.add_user("Squatter", sis_user_id="other", login_id=learners[5]["uuid"])
    await wait_until(lambda: _relayed(client), timeout=10)  # the whole backlog is queued before Canvas returns
    await canvas.up()

    async def dead_letters() -> int:
        return await client.app[DB].fetchval("SELECT COUNT(*) FROM dead_letters")

    await wait_until(lambda: len(canvas.state.user_creates) == 29, timeout=30)
    await wait_until(lambda: _equals(dead_letters, 1), timeout=30)
    assert learners[5]["uuid"] not in canvas.state.user_creates
    assert max(canvas.state.user_creates.values()) == 1
    assert canvas.sis_import_posts == 1
    # The fallback looked before creating: none of the 29 imported learners was POSTed again.
    assert canvas.requests["POST /api/v1/accounts/{account_id}/users"] == 1
    status = (await (await client.get("/api/v1/sync/status", headers=as_user(admin))).json())["data"][0]
    assert status["dead_letters"] == 1


async def _equals(fn, value) -> bool:
    return await fn() == value


async def _relayed(client) -> bool:
    return await client.app[DB].fetchval("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL") == 0


async def test_a_crash_during_an_import_only_updates_on_the_second_try(sync_client, make_user, canvas):
    """The import reached Canvas but its outcome was lost: the redelivered records look before creating."""
    client = await sync_client(sis_batch_min=20, push_batch=100)
    admin = await make_user(client, role="system_admin")
    await canvas.down()
    await add_provider(client, admin, canvas)
    learners = [await create_learner(client) for _ in range(40)]
    await wait_until(lambda: _relayed(client), timeout=10)
    canvas.lose_answers(1)  # the import is applied upstream, then the connection dies before the answer
    await canvas.up()

    async def settled() -> bool:
        return await client.app[DB].fetchval("SELECT COUNT(*) FROM push_deliveries WHERE state = 'done'") == 40

    await wait_until(settled, timeout=60)
    assert canvas.injected["lost_answer"] == 1
    assert max(canvas.state.user_creates.values()) == 1
    assert {lr["uuid"] for lr in learners} == set(canvas.state.user_creates)
    assert canvas.requests["POST /api/v1/accounts/{account_id}/users"] == 0  # looked up, found, not re-created


async def enrol_all(client, admin, provider, course, learners) -> int:
    db = client.app[DB]
    await db.execute("INSERT INTO courses (provider_id, external_id, name) VALUES (?, ?, 'Algebra')",
                     (provider["id"], str(course["id"])))
    local = await db.fetchval("SELECT id FROM courses WHERE external_id = ?", (str(course["id"]),))
    for learner in learners:
        resp = await client.post(f"/api/v1/courses/{local}/enrollments", json={"user_id": learner["id"]},
                                 headers=as_user(admin))
        assert resp.status == 201, await resp.text()
    return local


async def test_an_enrollment_backlog_goes_up_as_enrollments_csv_imports(sync_client, make_user, canvas):
    client = await sync_client(sis_batch_min=20, push_batch=200)
    admin = await make_user(client, role="system_admin")
    course = canvas.state.add_course("Algebra", sis_course_id="ALG-2026")
    await canvas.down()
    provider = await add_provider(client, admin, canvas)
    learners = [await create_learner(client) for _ in range(60)]
    await enrol_all(client, admin, provider, course, learners)
    await wait_until(lambda: _relayed(client), timeout=10)
    await canvas.up()

    async def settled() -> bool:
        return await client.app[DB].fetchval("SELECT COUNT(*) FROM push_deliveries WHERE state = 'done'") == 120

    await wait_until(settled, timeout=60)
    enrolled = {user_id for (course_id, user_id) in canvas.state.enrollment_creates if course_id == course["id"]}
    assert enrolled == {canvas.state.find_user(f"sis_user_id:{lr['uuid']}")["id"] for lr in learners}
    assert max(canvas.state.enrollment_creates.values()) == 1
    assert canvas.requests["POST /api/v1/courses/{course_id}/enrollments"] == 0  # none one by one
    assert canvas.requests["POST /api/v1/accounts/{account_id}/users"] == 0
    assert 2 <= canvas.sis_import_posts <= 6  # users first, then their enrollments
    assert all(e["type"] == "StudentEnrollment" and e["enrollment_state"] == "active"
               for e in canvas.state.enrollments.values())


async def test_enrollments_of_a_course_without_sis_id_go_one_by_one(sync_client, make_user, canvas):
    client = await sync_client(sis_batch_min=20, push_batch=200)
    admin = await make_user(client, role="system_admin")
    course = canvas.state.add_course("No SIS id")
    await canvas.down()
    provider = await add_provider(client, admin, canvas)
    learners = [await create_learner(client) for _ in range(25)]
    await enrol_all(client, admin, provider, course, learners)
    await wait_until(lambda: _relayed(client), timeout=10)
    await canvas.up()
    await wait_until(lambda: len(canvas.state.enrollment_creates) == 25, timeout=60)
    assert max(canvas.state.enrollment_creates.values()) == 1
    assert canvas.requests["POST /api/v1/courses/{course_id}/enrollments"] == 25
    assert canvas.sis_import_posts == 1  # the users only


async def test_an_enrollment_import_with_problems_falls_back_without_duplicates(sync_client, make_user, canvas):
    client = await sync_client(sis_batch_min=20, push_batch=200)
    admin = await make_user(client, role="system_admin")
    course = canvas.state.add_course("Algebra", sis_course_id="ALG-2026")
    await canvas.down()
    provider = await add_provider(client, admin, canvas, push_roster=False)  # accounts are made upstream
    learners = [await create_learner(client) for _ in range(30)]
    # Every learner but the first has a Canvas account: the first one's row fails inside the import.
    for learner in learners[1:]:
        canvas.state.add_user(learner["username"], sis_user_id=learner["uuid"], login_id=learner["uuid"])
    await enrol_all(client, admin, provider, course, learners)
    await wait_until(lambda: _relayed(client), timeout=10)
    await canvas.up()

    async def dead_letters() -> int:
        return await client.app[DB].fetchval("SELECT COUNT(*) FROM dead_letters")

    await wait_until(lambda: _equals(dead_letters, 1), timeout=60)
    assert len(canvas.state.enrollment_creates) == 29
    assert max(canvas.state.enrollment_creates.values()) == 1  # the fallback looked before enrolling
    assert canvas.sis_import_posts == 1
    assert canvas.sis_imports[max(canvas.sis_imports)]["workflow_state"] == "imported_with_messages"
    assert canvas.requests["POST /api/v1/courses/{course_id}/enrollments"] == 0  # all found enrolled
    letter = await client.app[DB].fetchone("SELECT outbox_id, error FROM dead_letters")
    assert "not provisioned upstream" in letter["error"]
