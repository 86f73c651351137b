"""The Kolibri connector against a real Kolibri 0.19 (installed and started by tests/connectors/conftest.py)."""

import asyncio
import uuid

import aiohttp
import pytest

from appliance.connectors.contract import Upstream, UserPush
from appliance.connectors.kolibri.connector import build
from appliance.connectors.kolibri.mapping import kolibri_username
from appliance.keys import DB
from tests.connectors.kolibri_helpers import add_kolibri, add_real_kolibri, queue_empty, run
from tests.realkolibri import KolibriAdmin
from tests.sync.helpers import as_user, create_learner, wait_until

pytestmark = pytest.mark.slow

CHANNEL = "c0ffee00" * 4


def content(i: int) -> str:
    return f"{i:032x}"


async def test_pull_users_classrooms_memberships_and_progress(admin, real_kolibri):
    client, admin_user = admin
    db = client.app[DB]
    sfx = uuid.uuid4().hex[:6]
    names = [f"pl_{sfx}_{i}" for i in range(3)]
    async with KolibriAdmin(real_kolibri) as k:
        kusers = [await k.create_user(n, full_name=f"Pupil {i}") for i, n in enumerate(names)]
        room = await k.create_classroom(f"Class {sfx}")
        for ku in kusers[:2]:
            await k.add_member(ku["id"], room["id"])
        # What the classroom counts: its active lessons' resources (a draft lesson's do not count).
        await k.create_lesson(room["id"], "Unit 1", [(CHANNEL, content(1)), (CHANNEL, content(2))])
        await k.create_lesson(room["id"], "Unit 2", [(CHANNEL, content(2)), (CHANNEL, content(3))])
        await k.create_lesson(room["id"], "Draft", [(CHANNEL, content(4))], active=False)
    await asyncio.to_thread(real_kolibri.seed_progress, [
        {"username": names[0], "content_id": content(1), "channel_id": CHANNEL, "time_spent": 321.0,
         "progress": 1.0, "completed": True},
        {"username": names[0], "content_id": content(2), "channel_id": CHANNEL, "time_spent": 40.4,
         "progress": 0.25, "kind": "exercise"},
        {"username": names[2], "content_id": content(1), "channel_id": CHANNEL, "time_spent": 5.0,
         "progress": 0.1},
    ])
    # Two of them have appliance accounts under the same username; the third stays unmatched.
    local = [await create_learner(client, username=n) for n in names[:2]]
    provider = await add_real_kolibri(client, admin_user, real_kolibri, push_roster=False)

    pulled = await run(client, admin_user, provider)
    assert pulled["state"] == "succeeded", pulled
    mapped = {r["external_user_id"]: r for r in await db.fetchall(
        "SELECT external_user_id, user_id, external_login_id, matched_by FROM provider_user_mappings"
        " WHERE provider_id = ?", (provider["id"],))}
    assert mapped[kusers[0]["id"]]["user_id"] == local[0]["id"]
    assert mapped[kusers[1]["id"]]["user_id"] == local[1]["id"]
    assert mapped[kusers[0]["id"]]["matched_by"] == "username"
    assert mapped[kusers[2]["id"]]["user_id"] is None  # unmatched: an admin links it
    unmatched = await (await client.get(f"/api/v1/providers/{provider['id']}/unmatched-users?per_page=100",
                                        headers=as_user(admin_user))).json()
    listed = {u["external_login_id"]: u for u in unmatched["data"]}
    assert listed[names[2]]["external_user_id"] == kusers[2]["id"]
    assert listed[names[2]]["external_name"] == "Pupil 2"
    assert names[0] not in listed and names[1] not in listed
    course = await db.fetchone("SELECT id, name, state FROM courses WHERE provider_id = ? AND external_id = ?",
                               (provider["id"], room["id"]))
    assert course["name"] == f"Class {sfx}" and course["state"] == "available"
    enrolled = await db.fetchall("SELECT user_id, state, source FROM enrollments WHERE course_id = ?", (course["id"],))
    assert {(r["user_id"], r["state"], r["source"]) for r in enrolled} == {
        (local[0]["id"], "active", "upstream"), (local[1]["id"], "active", "upstream")}

    # Kolibri forgets every session: lists would come back empty; the connector must notice and sign in again.
    await asyncio.to_thread(real_kolibri.shell,
                            "from kolibri.core.auth.models import Session; Session.objects.all().delete()")
    report = await run(client, admin_user, provider, job="report")
    assert report["state"] == "succeeded", report
    progress = {r["external_id"]: dict(r) for r in await db.fetchall(
        "SELECT external_id, user_id, course_id, total_time, progress, completed_at, occurred_at"
        " FROM learner_progress WHERE provider_id = ?", (provider["id"],))}
    assert set(progress) >= {f"{CHANNEL}:{content(1)}", f"{CHANNEL}:{content(2)}"}
    done = progress[f"{CHANNEL}:{content(1)}"]
    assert (done["user_id"], done["total_time"], done["progress"]) == (local[0]["id"], 321, 1.0)
    assert done["completed_at"] is not None and done["course_id"] is None
    half = progress[f"{CHANNEL}:{content(2)}"]
    assert (half["total_time"], half["progress"], half["completed_at"]) == (40, 0.25, None)
    assert not await db.fetchval(  # the unmatched learner's progress is not stored against anyone
        "SELECT COUNT(*) FROM learner_progress WHERE user_id NOT IN (?, ?)", (local[0]["id"], local[1]["id"]))
    cursor = await db.fetchval("SELECT value FROM sync_cursors WHERE provider_id = ? AND kind = 'activity_since'",
                               (provider["id"],))
    assert cursor is not None
    # Counted per classroom: one of its three lesson resources done, 321 s + 40 s spent on them.
    assert await course_progress(client, local[0], course["id"]) == (1, 3, 361)
    assert await course_progress(client, local[1], course["id"]) == (0, 3, 0)  # enrolled, nothing started
    assert await milestone_rows(db, course["id"]) == [
        (local[0]["id"], f"{CHANNEL}:{content(1)}#{local[0]['id']}", 1, 1.0),
        (local[0]["id"], f"{CHANNEL}:{content(2)}#{local[0]['id']}", 0, 0.25)]
    home = await client.get("/", headers=as_user(local[0]))
    assert home.status == 200
    page = await home.text()
    assert f"Class {sfx}" in page and "1 of 3 steps done" in page

    # More progress upstream: the next report updates the row in place (latest totals win).
    await asyncio.to_thread(real_kolibri.seed_progress, [
        {"username": names[0], "content_id": content(2), "channel_id": CHANNEL, "time_spent": 95.0,
         "progress": 1.0, "completed": True, "minutes_ago": 1}])
    again = await run(client, admin_user, provider, job="report")
    assert again["state"] == "succeeded", again
    row = await db.fetchone("SELECT total_time, progress, completed_at FROM learner_progress WHERE provider_id = ?"
                            " AND external_id = ?", (provider["id"], f"{CHANNEL}:{content(2)}"))
    assert (row["total_time"], row["progress"]) == (95, 1.0) and row["completed_at"] is not None
    assert await db.fetchval("SELECT COUNT(*) FROM learner_progress WHERE provider_id = ?", (provider["id"],)) == 2
    assert await course_progress(client, local[0], course["id"]) == (2, 3, 416)
    page = await (await client.get("/", headers=as_user(local[0]))).text()
    assert "2 of 3 steps done" in page
    # Nothing new upstream: another report records nothing more (no time counted twice).
    before = await activity_rows(db, course["id"])
    assert before == [(local[0]["id"], 361, 361), (local[0]["id"], 416, 55)]
    assert (await run(client, admin_user, provider, job="report"))["state"] == "succeeded"
    assert (await run(client, admin_user, provider))["state"] == "succeeded"
    assert await activity_rows(db, course["id"]) == before
    assert await course_progress(client, local[0], course["id"]) == (2, 3, 416)


async def course_progress(client, learner: dict, course_id: int) -> tuple[int, int, int]:
    """(milestones done, expected, seconds) of one course, as the learner reads them from the API."""
    resp = await client.get(f"/api/v1/users/{learner['id']}/progress", headers=as_user(learner))
    assert resp.status == 200, await resp.text()
    row = next(r for r in (await resp.json())["data"] if r["course_id"] == course_id)
    return row["milestones_done"], row["total_milestones"], row["total_time_s"]


async def milestone_rows(db, course_id: int) -> list[tuple]:
    return [tuple(r) for r in await db.fetchall(
        "SELECT user_id, external_id, is_completed, score FROM milestones WHERE course_id = ?"
        " AND type = 'resource_completion' ORDER BY user_id, external_id", (course_id,))]


async def activity_rows(db, course_id: int) -> list[tuple]:
    return [tuple(r) for r in await db.fetchall(
        "SELECT user_id, total_time, time_delta FROM activities WHERE course_id = ? ORDER BY id", (course_id,))]


async def test_push_learners_and_memberships_then_deactivate(admin, real_kolibri):
    client, admin_user = admin
    db = client.app[DB]
    sfx = uuid.uuid4().hex[:6]
    async with KolibriAdmin(real_kolibri) as k:
        room = await k.create_classroom(f"Push {sfx}")
    provider = await add_real_kolibri(client, admin_user, real_kolibri)
    dotted = await create_learner(client, username=f"jean.{sfx}", first_name="Jean", last_name="Dupont")
    plain = await create_learner(client, username=f"ada_{sfx}", first_name="Ada", last_name="L")
    await wait_until(lambda: queue_empty(client, admin_user), timeout=60, interval=0.3)
    async with KolibriAdmin(real_kolibri) as k:
        held = {u["username"]: u for u in await k.users(search=sfx)}
    assert set(held) == {kolibri_username(dotted["username"]), f"ada_{sfx}"}
    assert held[kolibri_username(dotted["username"])]["id_number"] == dotted["uuid"]
    assert held[kolibri_username(dotted["username"])]["full_name"] == "Jean Dupont"
    assert held[f"ada_{sfx}"]["id_number"] == plain["uuid"]
    assert held[f"ada_{sfx}"]["roles"] == []  # a learner

    pulled = await run(client, admin_user, provider)  # learns the classroom; pushed learners map by uuid
    assert pulled["state"] == "succeeded", pulled
    course_id = await db.fetchval("SELECT id FROM courses WHERE external_id = ?", (room["id"],))
    resp = await client.post(f"/api/v1/courses/{course_id}/enrollments", json={"user_id": dotted["id"]},
                             headers=as_user(admin_user))
    assert resp.status == 201, await resp.text()
    await wait_until(lambda: queue_empty(client, admin_user), timeout=60, interval=0.3)
    async with KolibriAdmin(real_kolibri) as k:
        members = await k.memberships(room["id"])
    assert [m["user"] for m in members] == [held[kolibri_username(dotted["username"])]["id"]]
    external = await db.fetchval("SELECT external_id FROM enrollments WHERE course_id = ?", (course_id,))
    assert external == members[0]["id"]

    # Deactivated at the facility: Kolibri soft-deletes the account (restorable, progress kept).
    resp = await client.patch(f"/api/v1/users/{plain['id']}", json={"active": False}, headers=as_user(admin_user))
    assert resp.status == 200, await resp.text()
    await wait_until(lambda: queue_empty(client, admin_user), timeout=60, interval=0.3)
    async with KolibriAdmin(real_kolibri) as k:
        assert f"ada_{sfx}" not in {u["username"] for u in await k.users(search=sfx)}
        assert f"ada_{sfx}" in {u["username"] for u in await k.deleted_users()}
    dead = await db.fetchval("SELECT COUNT(*) FROM dead_letters WHERE provider_id = ?", (provider["id"],))
    assert dead == 0


async def test_pushes_are_idempotent_and_never_adopt_somebody_elses_username(real_kolibri):
    sfx = uuid.uuid4().hex[:6]
    async with KolibriAdmin(real_kolibri) as k:
        other = await k.create_user(f"taken_{sfx}")
        await k.request("PATCH", f"/api/auth/facilityuser/{other['id']}/", {"id_number": "someone-else"})
        native = await k.create_user(f"native_{sfx}", full_name="Old Name")
    async with aiohttp.ClientSession() as http:
        connector = build(Upstream(1, "kolibri", real_kolibri.base_url, "", real_kolibri.credentials, http))
        me = {"uuid": str(uuid.uuid4()), "username": f"mine.{sfx}", "first_name": "Me", "last_name": "Too"}
        first = await connector.ensure_user(UserPush(me["uuid"], me, False), create=True, check_first=False)
        # A redelivery after a crash (the first answer lost): create first, "taken", adopt.
        again = await connector.ensure_user(UserPush(me["uuid"], me, False), create=True, check_first=False)
        assert first.outcome.value == "created" and again.outcome.value == "unchanged"
        assert again.external_id == first.external_id
        stranger = {"uuid": str(uuid.uuid4()), "username": f"taken_{sfx}", "first_name": "X", "last_name": "Y"}
        with pytest.raises(Exception, match="belongs to another person"):
            await connector.ensure_user(UserPush(stranger["uuid"], stranger, False), create=True)
        # A Kolibri learner matched by username becomes ours (its id_number takes our uuid, its name ours).
        mine = {"uuid": str(uuid.uuid4()), "username": f"native_{sfx}", "first_name": "New", "last_name": "Name"}
        claimed = await connector.ensure_user(UserPush(mine["uuid"], mine, False), create=True)
        assert claimed.outcome.value == "updated" and claimed.external_id == native["id"]
        # Enrollments: look first, create once.
        async with KolibriAdmin(real_kolibri) as k:
            room = await k.create_classroom(f"Idem {sfx}")
        results = [await connector.ensure_enrollment(room["id"], me["uuid"]) for _ in range(3)]
        assert [r.outcome.value for r in results] == ["created", "unchanged", "unchanged"]
        listed = [e async for page in connector.enrollments(room["id"]) for e in page]
        assert [e.user_external_id for e in listed] == [first.external_id]
        # Kolibri keeps listing a soft-deleted learner's memberships; the connector leaves them out.
        async with KolibriAdmin(real_kolibri) as k:
            gone = await k.create_user(f"gone_{sfx}")
            await k.add_member(gone["id"], room["id"])
            await k.request("DELETE", f"/api/auth/facilityuser/{gone['id']}/")
            assert gone["id"] in {m["user"] for m in await k.memberships(room["id"])}
        assert [u async for page in connector.users() for u in page if u.external_id == gone["id"]] == []
        listed = [e async for page in connector.enrollments(room["id"]) for e in page]
        assert [e.user_external_id for e in listed] == [first.external_id]
        dropped = await connector.drop_enrollment(room["id"], me["uuid"])
        assert dropped.outcome.value == "updated"
        assert (await connector.drop_enrollment(room["id"], me["uuid"])).outcome.value == "unchanged"
        # Deactivate, then reactivate: the same Kolibri account comes back (no second account).
        assert (await connector.deactivate_user(me["uuid"])).outcome.value == "updated"
        back = await connector.ensure_user(UserPush(me["uuid"], me, False), create=True)
        assert back.outcome.value == "updated" and back.external_id == first.external_id
    async with KolibriAdmin(real_kolibri) as k:
        assert [u["id"] for u in await k.users(search=f"mine_{sfx}")] == [first.external_id]
        assert (await k.users(search=f"native_{sfx}"))[0]["full_name"] == "New Name"


async def test_bad_credentials_mark_the_provider_auth_failed(admin, real_kolibri):
    client, admin_user = admin
    provider = await add_kolibri(client, admin_user, real_kolibri.base_url,
                                 {"username": "kadmin", "password": "wrong-password"})
    db = client.app[DB]

    async def auth_failed() -> bool:
        return await db.fetchval("SELECT runtime_state FROM providers WHERE id = ?", (provider["id"],)) == "auth_failed"

    await wait_until(auth_failed, timeout=30, interval=0.2, message="auth_failed")
    error = await db.fetchval("SELECT last_error FROM providers WHERE id = ?", (provider["id"],))
    assert "INVALID_CREDENTIALS" in error
    resp = await client.post(f"/api/v1/providers/{provider['id']}/test", headers=as_user(admin_user))
    assert (await resp.json())["data"]["credentials_valid"] is False


async def test_a_learner_account_is_refused_as_not_an_admin(real_kolibri):
    sfx = uuid.uuid4().hex[:6]
    async with KolibriAdmin(real_kolibri) as k:
        await k.create_user(f"learner_{sfx}", password="learner-pass-1")
    async with aiohttp.ClientSession() as http:
        connector = build(Upstream(1, "kolibri", real_kolibri.base_url, "",
                                   {"username": f"learner_{sfx}", "password": "learner-pass-1"}, http))
        with pytest.raises(Exception, match="not an admin"):
            await connector.probe(10)
