"""Push path end to end: outbox → relay → JetStream → provider consumer → fake Canvas, exactly once."""

from appliance.keys import DB
from tests.sync.helpers import as_user, create_learner, wait_until


async def add_provider(client, admin_user, canvas, **fields):
    body = {
        "type": "canvas_oss",
        "name": fields.pop("name", "Canvas"),
        "base_url": canvas.base_url,
        "account_id": "1",
        "credentials": {"access_token": fields.pop("token", "canvas-token")},
        **fields,
    }
    resp = await client.post("/api/v1/providers", json=body, headers=as_user(admin_user))
    assert resp.status == 201, await resp.text()
    return (await resp.json())["data"]


async def test_learners_and_enrollments_reach_canvas_exactly_once(admin, canvas):
    client, user = admin
    provider = await add_provider(client, user, canvas)
    learners = [await create_learner(client, first_name=f"L{i}") for i in range(12)]
    staff = await create_learner(client, role="facility_admin")
    await wait_until(lambda: len(canvas.state.user_creates) == 12, message="learners upstream")
    assert set(canvas.state.user_creates) == {lr["uuid"] for lr in learners}
    assert all(n == 1 for n in canvas.state.user_creates.values())
    assert staff["uuid"] not in canvas.state.user_creates

    course = canvas.state.add_course("Algebra")
    db = client.app[DB]
    await db.execute(
        "INSERT INTO courses (provider_id, external_id, name) VALUES (?, ?, 'Algebra')",
        (provider["id"], str(course["id"])),
    )
    local_course = await db.fetchval("SELECT id FROM courses WHERE external_id = ?", (str(course["id"]),))
    resp = await client.post(
        f"/api/v1/courses/{local_course}/enrollments", json={"user_id": learners[0]["id"]}, headers=as_user(user)
    )
    assert resp.status == 201, await resp.text()
    await wait_until(lambda: len(canvas.state.enrollment_creates) == 1)
    resp = await client.delete(
        f"/api/v1/courses/{local_course}/enrollments", json={"user_id": learners[0]["id"]}, headers=as_user(user)
    )
    assert resp.status == 200
    await wait_until(lambda: len(canvas.state.enrollment_deletes) == 1)

    async def settled() -> bool:
        status = await (await client.get("/api/v1/sync/status", headers=as_user(user))).json()
        return status["data"][0]["queue_depth"] == 0

    await wait_until(settled)
    status = (await (await client.get("/api/v1/sync/status", headers=as_user(user))).json())["data"][0]
    assert status["uplink"] == "up"
    assert status["runtime_state"] == "ready"
    assert status["dead_letters"] == 0
    assert status["last_push_at"] is not None
    mapped = await db.fetchval("SELECT COUNT(*) FROM provider_user_mappings WHERE matched_by = 'pushed'")
    assert mapped == 12
    assert not canvas.state.rejected_writes


async def test_learners_created_updated_and_deactivated_through_identity_reach_canvas(admin, canvas):
    client, user = admin
    await add_provider(client, user, canvas)
    resp = await client.post(
        "/api/v1/users",
        json={
            "username": "ada.l",
            "first_name": "Ada",
            "last_name": "L",
            "role": "learner",
            "password": "correct horse battery 9",
        },
        headers=as_user(user),
    )
    assert resp.status == 201, await resp.text()
    created = (await resp.json())["data"]["user"]
    await wait_until(lambda: created["uuid"] in canvas.state.user_creates)
    resp = await client.patch(f"/api/v1/users/{created['id']}", json={"last_name": "Lovelace"}, headers=as_user(user))
    assert resp.status == 200, await resp.text()
    upstream = canvas.state.find_user(f"sis_user_id:{created['uuid']}")
    await wait_until(lambda: upstream["name"] == "Ada Lovelace")
    assert upstream["sortable_name"] == "Lovelace, Ada"
    for active, state in ((False, "suspended"), (True, "registered")):
        resp = await client.patch(f"/api/v1/users/{created['id']}", json={"active": active}, headers=as_user(user))
        assert resp.status == 200, await resp.text()
        await wait_until(lambda state=state: upstream["workflow_state"] == state)
    assert canvas.state.user_creates[created["uuid"]] == 1


async def test_metrics_show_queue_depth_and_pushes(admin, canvas):
    client, user = admin
    provider = await add_provider(client, user, canvas)
    await canvas.down()
    for _ in range(3):
        await create_learner(client)

    async def depth_reported() -> bool:
        text = await (await client.get("/metrics")).text()
        return f'appliance_sync_queue_depth_records{{provider="{provider["id"]}"}} 3.0' in text

    await wait_until(depth_reported, timeout=20)
    text = await (await client.get("/metrics")).text()
    assert f'appliance_sync_uplink_up{{provider="{provider["id"]}"}} 0.0' in text
    await canvas.up()
    await wait_until(lambda: len(canvas.state.user_creates) == 3, timeout=20)
    text = await (await client.get("/metrics")).text()
    assert "appliance_sync_pushed_records_total" in text
    assert "appliance_sync_relayed_records_total" in text


async def test_a_worker_process_writes_the_outbox_and_only_the_primary_relays_and_pushes(
    app_client, config_factory, make_user, canvas
):
    from appliance.app import BUS_URL
    from appliance.core.process import ProcessRole
    from appliance.sync.keys import ENGINE
    from tests.sync.conftest import FAST_SYNC
    from tests.sync.helpers import install_header_auth

    config = config_factory(sync=FAST_SYNC)
    primary = await app_client(config)
    worker = await app_client(config, role=ProcessRole.WORKER, bus_url=primary.app[BUS_URL])
    install_header_auth(primary)
    install_header_auth(worker)
    assert primary.app[ENGINE] is not None
    assert worker.app[ENGINE] is None  # no relay, consumer, monitor or scheduler in a worker
    admin = await make_user(primary, role="system_admin")
    provider = await add_provider(worker, admin, canvas)
    course = canvas.state.add_course("Algebra")
    db = worker.app[DB]
    await db.execute("INSERT INTO courses (provider_id, external_id, name) VALUES (?, ?, 'Algebra')",
                     (provider["id"], str(course["id"])))
    local_course = await db.fetchval("SELECT id FROM courses")
    learner = await create_learner(worker)
    resp = await worker.post(f"/api/v1/courses/{local_course}/enrollments", json={"user_id": learner["id"]},
                             headers=as_user(admin))
    assert resp.status == 201
    await wait_until(lambda: len(canvas.state.enrollment_creates) == 1, timeout=20)
    assert canvas.state.user_creates == {learner["uuid"]: 1}
