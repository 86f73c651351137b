"""Pulls: every page read, users matched (never merged silently), cursors advance only on success."""

from appliance.keys import DB
from tests.sync.helpers import as_user, create_learner, wait_until
from tests.sync.test_push import add_provider


async def run_and_wait(client, user, provider_id, job="pull") -> dict:
    resp = await client.post(f"/api/v1/providers/{provider_id}/sync", json={"job": job}, headers=as_user(user))
    assert resp.status == 202
    run_id = (await resp.json())["data"]["run_id"]

    async def finished() -> bool:
        state = await client.app[DB].fetchval("SELECT state FROM sync_runs WHERE id = ?", (run_id,))
        return state in ("succeeded", "failed")

    await wait_until(finished, timeout=30)
    row = await client.app[DB].fetchone("SELECT * FROM sync_runs WHERE id = ?", (run_id,))
    return dict(row)


async def test_pull_matches_users_and_reads_courses_enrollments_milestones(sync_client, make_user, canvas):
    client = await sync_client(per_page=100)
    admin = await make_user(client, role="system_admin")
    canvas.max_per_page = 40  # the client asks for 100: Canvas caps it, paging must still read everything
    by_sis = await create_learner(client)
    by_login = await create_learner(client, username="grace")
    by_doc = await create_learner(client, doc_id="DOC-77")
    to_link = await create_learner(client)
    provider = await add_provider(client, admin, canvas, push_roster=False)
    a = canvas.state.add_user("Ada Upstream", sis_user_id=by_sis["uuid"])
    b = canvas.state.add_user("Grace Upstream", login_id="Grace")
    c = canvas.state.add_user("Doc Upstream", sis_user_id="DOC-77")
    d = canvas.state.add_user("Nobody Local", sis_user_id="X-1")
    for i in range(150):
        canvas.state.add_user(f"Other {i}")
    algebra = canvas.state.add_course("Algebra")
    canvas.state.add_course("Biology")
    canvas.state.add_course("Draft", workflow_state="unpublished")
    canvas.state.enroll(algebra["id"], a["id"])
    canvas.state.enroll(algebra["id"], b["id"])
    canvas.state.enroll(algebra["id"], d["id"])
    quiz = canvas.state.add_assignment(algebra["id"], "Quiz 1")
    canvas.state.add_submission(quiz["id"], a["id"], submitted_at="2026-11-20T10:00:00Z", score=9.0)

    run = await run_and_wait(client, admin, provider["id"])
    assert run["state"] == "succeeded", run["errors"]
    db = client.app[DB]
    matches = {
        r["external_user_id"]: (r["user_id"], r["matched_by"])
        for r in await db.fetchall("SELECT external_user_id, user_id, matched_by FROM provider_user_mappings")
    }
    assert len(matches) == 154  # every page was read
    assert matches[str(a["id"])] == (by_sis["id"], "sis_id")
    assert matches[str(b["id"])] == (by_login["id"], "username")
    assert matches[str(c["id"])] == (by_doc["id"], "doc_id")
    assert matches[str(d["id"])] == (None, None)
    assert canvas.requests["GET /api/v1/accounts/{account_id}/users"] == 4  # 154 users at 40 per page

    courses = await (await client.get("/api/v1/courses", headers=as_user(admin))).json()
    assert {c["name"] for c in courses["data"]} == {"Algebra", "Biology", "Draft"}
    mine = await (await client.get("/api/v1/courses", headers=as_user(by_sis))).json()
    assert [c["name"] for c in mine["data"]] == ["Algebra"]
    progress = await (await client.get(f"/api/v1/users/{by_sis['id']}/progress", headers=as_user(by_sis))).json()
    assert progress["data"][0]["submissions"] == 1
    assert (await client.get(f"/api/v1/users/{by_login['id']}/progress", headers=as_user(by_sis))).status == 404
    grades = await db.fetchval("SELECT COUNT(*) FROM milestones WHERE type = 'grade_received'")
    assert grades == 1

    unmatched = await (
        await client.get(f"/api/v1/providers/{provider['id']}/unmatched-users?per_page=100", headers=as_user(admin))
    ).json()
    assert unmatched["meta"]["total"] == 151
    link = f"/api/v1/providers/{provider['id']}/unmatched-users/{d['id']}/link"
    resp = await client.post(link, json={"user_id": to_link["id"]}, headers=as_user(admin))
    assert resp.status == 200
    assert (await client.post(link, json={"user_id": to_link["id"]}, headers=as_user(admin))).status == 409
    resp = await client.post(
        f"/api/v1/providers/{provider['id']}/unmatched-users/{c['id']}/link",
        json={"user_id": to_link["id"]},
        headers=as_user(admin),
    )
    assert resp.status == 409  # already linked upstream user


async def test_cursor_advances_only_when_the_run_succeeds(sync_client, make_user, canvas):
    client = await sync_client()
    admin = await make_user(client, role="system_admin")
    provider = await add_provider(client, admin, canvas)
    canvas.state.add_course("Algebra")
    db = client.app[DB]
    first = await run_and_wait(client, admin, provider["id"])
    assert first["state"] == "succeeded"
    cursor = await db.fetchval("SELECT value FROM sync_cursors WHERE kind = 'milestones_since'")
    assert cursor == first["started_at"]
    canvas.tokens.clear()  # the token is revoked upstream
    second = await run_and_wait(client, admin, provider["id"])
    assert second["state"] == "failed"
    assert "AuthFailed" in second["errors"]
    assert await db.fetchval("SELECT value FROM sync_cursors WHERE kind = 'milestones_since'") == cursor
    runs = await (await client.get("/api/v1/sync/runs", headers=as_user(admin))).json()
    assert [r["state"] for r in runs["data"][:2]] == ["failed", "succeeded"]


async def test_report_records_time_spent_and_grades(sync_client, make_user, canvas):
    client = await sync_client()
    admin = await make_user(client, role="system_admin")
    learner = await create_learner(client)
    provider = await add_provider(client, admin, canvas, push_roster=False)
    upstream = canvas.state.add_user("Ada", sis_user_id=learner["uuid"])
    course = canvas.state.add_course("Algebra")
    enrollment = canvas.state.enroll(course["id"], upstream["id"])
    enrollment["total_activity_time"] = 600
    enrollment["grades"]["current_score"] = 91.5
    assert (await run_and_wait(client, admin, provider["id"]))["state"] == "succeeded"
    assert (await run_and_wait(client, admin, provider["id"], job="report"))["state"] == "succeeded"
    enrollment["total_activity_time"] = 900
    assert (await run_and_wait(client, admin, provider["id"], job="report"))["state"] == "succeeded"
    db = client.app[DB]
    deltas = [r["time_delta"] for r in await db.fetchall("SELECT time_delta FROM activities ORDER BY id")]
    assert deltas == [600, 300]
    progress = await (await client.get(f"/api/v1/users/{learner['id']}/progress", headers=as_user(admin))).json()
    assert progress["data"][0]["grade"] == "91.5"
    assert progress["data"][0]["total_time_s"] == 900
    bad = await client.post(f"/api/v1/providers/{provider['id']}/sync", json={"job": "nap"}, headers=as_user(admin))
    assert bad.status == 400
