"""User administration through the API: outbox, audit, facility confinement, reset, deactivation."""

import json
from collections.abc import Callable

from aiohttp.test_utils import TestClient

from appliance.keys import DB
from tests.auth.helpers import Browser
from tests.conftest import MakeFacility, MakeUser

Browsers = Callable[[TestClient], Browser]


async def signed_in(client: TestClient, make_user: MakeUser, browsers: Browsers, **kw: object) -> Browser:
    """A browser signed in as a new user with these make_user arguments."""
    user = await make_user(client, **kw)
    b = browsers(client)
    await b.login(user["username"], user["password"])
    b.user = user  # type: ignore[attr-defined]
    return b


async def outbox(client: TestClient) -> list[tuple[str, dict]]:
    rows = await client.app[DB].fetchall("SELECT topic, payload FROM outbox ORDER BY id")
    return [(r["topic"], json.loads(r["payload"])) for r in rows]


async def test_create_update_deactivate_learner_writes_outbox_and_audit(
    client: TestClient, make_user: MakeUser, browsers: Browsers
) -> None:
    admin = await signed_in(client, make_user, browsers, role="facility_admin")
    created = await admin.call(
        "POST",
        "/api/v1/users",
        expect=201,
        json={
            "username": "Learner.One",
            "first_name": "Lee",
            "last_name": "One",
            "doc_id": "A-1001",
            "role": "learner",
        },
    )
    user, temp = created["data"]["user"], created["data"]["temporary_password"]
    assert user["must_change_password"] is True
    assert user["facility_id"] == 1
    learner = browsers(client)
    await learner.login("learner.one", temp)
    body = await learner.call("GET", "/api/v1/users", expect=403)
    assert body["error"]["code"] == "password_change_required"
    await learner.call(
        "POST", "/api/v1/auth/password", json={"current_password": temp, "new_password": "my own pass 9"}
    )
    uid = user["id"]
    await admin.call("PATCH", f"/api/v1/users/{uid}", json={"first_name": "Leo", "email": "leo@unit.test"})
    await admin.call("DELETE", f"/api/v1/users/{uid}")
    await learner.call("GET", "/api/v1/auth/me", expect=401)  # deactivation ended the session
    await browsers(client).login("learner.one", "my own pass 9", expect=401)
    topics = await outbox(client)
    assert [t for t, _ in topics] == ["roster.user.created", "roster.user.updated", "roster.user.deactivated"]
    assert topics[0][1]["uuid"] == user["uuid"]
    assert topics[0][1]["doc_id"] == "A-1001"
    assert topics[1][1]["first_name"] == "Leo"
    assert topics[2][1]["deactivated_at"] is not None
    audit = await admin.call("GET", f"/api/v1/audit?target_user_id={uid}&per_page=50")
    actions = [e["action"] for e in audit["data"]][::-1]
    assert actions[:3] == ["user_created", "password_set", "sign_in_succeeded"]
    assert {"password_set", "user_updated", "user_deactivated"} <= set(actions)
    deactivated = next(e for e in audit["data"] if e["action"] == "user_deactivated")
    assert deactivated["actor"]["username"] == admin.user["username"]  # type: ignore[attr-defined]
    assert deactivated["client_addr"] == "127.0.0.1"
    assert audit["data"][0]["action"] == "sign_in_failed"  # the attempt after deactivation


async def test_staff_changes_do_not_go_to_the_lms(client: TestClient, make_user: MakeUser, browsers: Browsers) -> None:
    admin = await signed_in(client, make_user, browsers, role="system_admin")
    await admin.call("POST", "/api/v1/users", expect=201, json={"username": "staff1", "role": "facility_admin"})
    assert await outbox(client) == []


async def test_role_change_ends_sessions_and_is_audited(
    client: TestClient, make_user: MakeUser, browsers: Browsers
) -> None:
    admin = await signed_in(client, make_user, browsers, role="system_admin")
    learner = await signed_in(client, make_user, browsers, role="learner")
    lid = learner.user["id"]  # type: ignore[attr-defined]
    await admin.call("PATCH", f"/api/v1/users/{lid}", json={"role": "facility_admin"})
    await learner.call("GET", "/api/v1/auth/me", expect=401)
    await learner.login(learner.user["username"], learner.user["password"])  # type: ignore[attr-defined]
    assert (await learner.call("GET", "/api/v1/auth/me"))["data"]["role"] == "facility_admin"
    audit = await admin.call("GET", "/api/v1/audit?action=role_changed")
    assert audit["data"][0]["details"] == {"from": "learner", "to": "facility_admin"}


async def test_facility_admin_is_confined(
    client: TestClient, make_user: MakeUser, make_facility: MakeFacility, browsers: Browsers
) -> None:
    other = await make_facility(client, "Unit B")
    stranger = await make_user(client, facility_id=other)
    fa = await signed_in(client, make_user, browsers, role="facility_admin")
    peer = await make_user(client, role="facility_admin")
    await fa.call("GET", f"/api/v1/users/{stranger['id']}", expect=404)
    await fa.call("PATCH", f"/api/v1/users/{stranger['id']}", json={"first_name": "X"}, expect=404)
    await fa.call("POST", f"/api/v1/users/{stranger['id']}/reset-password", expect=404)
    await fa.call(
        "POST", "/api/v1/users", json={"username": "sneaky", "role": "learner", "facility_id": other}, expect=403
    )
    await fa.call("POST", "/api/v1/users", json={"username": "boss", "role": "system_admin"}, expect=403)
    await fa.call("DELETE", f"/api/v1/users/{peer['id']}", expect=403)  # same role: not theirs to manage
    listed = await fa.call("GET", "/api/v1/users?status=all")
    assert stranger["id"] not in [u["id"] for u in listed["data"]]
    assert [f["id"] for f in (await fa.call("GET", "/api/v1/facilities"))["data"]] == [1]
    await fa.call("POST", "/api/v1/facilities", json={"name": "Mine"}, expect=403)


async def test_department_admin_reaches_its_facilities(
    client: TestClient, make_user: MakeUser, make_facility: MakeFacility, browsers: Browsers
) -> None:
    f2, f3 = await make_facility(client, "Unit 2"), await make_facility(client, "Unit 3")
    in2, in3 = await make_user(client, facility_id=f2), await make_user(client, facility_id=f3)
    da = await signed_in(client, make_user, browsers, role="department_admin", extra_facilities=(f2,))
    await da.call("GET", f"/api/v1/users/{in2['id']}")
    await da.call("GET", f"/api/v1/users/{in3['id']}", expect=404)
    ids = [u["id"] for u in (await da.call("GET", "/api/v1/users"))["data"]]
    assert in2["id"] in ids
    assert in3["id"] not in ids
    await da.call(
        "POST", "/api/v1/users", json={"username": "fa2", "role": "facility_admin", "facility_id": f2}, expect=201
    )
    await da.call(
        "POST", "/api/v1/users", json={"username": "fa3", "role": "facility_admin", "facility_id": f3}, expect=403
    )


async def test_reset_password_issues_temporary_password(
    client: TestClient, make_user: MakeUser, browsers: Browsers
) -> None:
    admin = await signed_in(client, make_user, browsers, role="facility_admin")
    learner = await signed_in(client, make_user, browsers)
    lid = learner.user["id"]  # type: ignore[attr-defined]
    body = await admin.call("POST", f"/api/v1/users/{lid}/reset-password")
    temp = body["data"]["temporary_password"]
    await learner.call("GET", "/api/v1/auth/me", expect=401)
    again = browsers(client)
    await again.login(learner.user["username"], learner.user["password"], expect=401)  # type: ignore[attr-defined]
    login = await again.login(learner.user["username"], temp)  # type: ignore[attr-defined]
    assert login["data"]["must_change_password"] is True
    assert (await again.call("GET", "/api/v1/users", expect=403))["error"]["code"] == "password_change_required"
    stored = await client.app[DB].fetchval("SELECT password_hash FROM users WHERE id = ?", (lid,))
    assert temp not in stored


async def test_admin_lists_and_ends_sessions(client: TestClient, make_user: MakeUser, browsers: Browsers) -> None:
    admin = await signed_in(client, make_user, browsers, role="system_admin")
    learner = await signed_in(client, make_user, browsers)
    lid = learner.user["id"]  # type: ignore[attr-defined]
    sessions = (await admin.call("GET", f"/api/v1/users/{lid}/sessions"))["data"]
    assert len(sessions) == 1
    assert "token_hash" not in sessions[0]
    await admin.call("DELETE", f"/api/v1/users/{lid}/sessions/{sessions[0]['id']}")
    await learner.call("GET", "/api/v1/auth/me", expect=401)
    await admin.call("DELETE", f"/api/v1/users/{lid}/sessions/{sessions[0]['id']}", expect=404)
    assert (await admin.call("GET", "/api/v1/audit?action=session_revoked"))["meta"]["total"] == 1


async def test_audit_log_is_filtered_paginated_and_scoped(
    client: TestClient, make_user: MakeUser, make_facility: MakeFacility, browsers: Browsers
) -> None:
    other = await make_facility(client)
    outsider = await make_user(client, facility_id=other)
    await browsers(client).login(outsider["username"], "wrong-pass-1", expect=401)
    admin = await signed_in(client, make_user, browsers, role="system_admin")
    fa = await signed_in(client, make_user, browsers, role="facility_admin")
    page = await admin.call("GET", "/api/v1/audit?per_page=1&page=2")
    assert page["meta"]["total"] == 3
    assert page["meta"]["per_page"] == 1
    assert len(page["data"]) == 1
    fails = await admin.call("GET", "/api/v1/audit?action=sign_in_failed")
    assert [e["target"]["user_id"] for e in fails["data"]] == [outsider["id"]]
    assert (await fa.call("GET", "/api/v1/audit?action=sign_in_failed"))["meta"]["total"] == 0
    await admin.call("GET", "/api/v1/audit?action=nope", expect=400)
    await admin.call("GET", "/api/v1/audit?per_page=100000", expect=400)
    await browsers(client).call("GET", "/api/v1/audit", expect=401)
    learner = await signed_in(client, make_user, browsers)
    await learner.call("GET", "/api/v1/audit", expect=403)


async def test_facilities(client: TestClient, make_user: MakeUser, browsers: Browsers) -> None:
    admin = await signed_in(client, make_user, browsers, role="system_admin")
    made = await admin.call(
        "POST", "/api/v1/facilities", json={"name": "Unit C", "timezone": "America/Chicago"}, expect=201
    )
    assert made["data"]["timezone"] == "America/Chicago"
    await admin.call("POST", "/api/v1/facilities", json={"name": "Unit C"}, expect=409)
    await admin.call("POST", "/api/v1/facilities", json={"name": "Unit D", "timezone": "Mars/Base"}, expect=400)
    names = [f["name"] for f in (await admin.call("GET", "/api/v1/facilities"))["data"]]
    assert names == ["Default", "Unit C"]


async def test_api_tokens(client: TestClient, make_user: MakeUser, browsers: Browsers) -> None:
    admin = await signed_in(client, make_user, browsers, role="system_admin")
    made = (await admin.call("POST", "/api/v1/tokens", json={"name": "kiosk", "role": "facility_admin"}, expect=201))[
        "data"
    ]
    token = made["token"]
    db = client.app[DB]
    assert await db.fetchval("SELECT count(*) FROM api_tokens WHERE token_hash = ?", (token,)) == 0
    assert "token" not in (await admin.call("GET", "/api/v1/tokens"))["data"][0]
    auth = {"Authorization": f"Bearer {token}"}
    async with client.get("/api/v1/auth/me", headers=auth) as r:
        me = (await r.json())["data"]
        assert me["effective_role"] == "facility_admin"  # capped below its owner's system_admin
        assert me["via"] == "token"
    async with client.post("/api/v1/facilities", json={"name": "X"}, headers=auth) as r:
        assert r.status == 403
    async with client.post("/api/v1/users", json={"username": "bytoken", "role": "learner"}, headers=auth) as r:
        assert r.status == 201  # no CSRF token needed: a bearer token is never sent by a browser by itself
    assert await db.fetchval("SELECT last_used_at FROM api_tokens") is not None
    await admin.call("DELETE", f"/api/v1/tokens/{made['id']}")
    async with client.get("/api/v1/auth/me", headers=auth) as r:
        assert r.status == 401
    fa = await signed_in(client, make_user, browsers, role="facility_admin")
    await fa.call("POST", "/api/v1/tokens", json={"name": "up", "role": "system_admin"}, expect=403)


async def test_facility_settings_are_changed_by_their_admins_only(
    client: TestClient, make_user: MakeUser, make_facility: MakeFacility, browsers: Browsers
) -> None:
    other = await make_facility(client, "Unit Z")
    fa = await signed_in(client, make_user, browsers, role="facility_admin")
    body = await fa.call("PATCH", "/api/v1/facilities/1", json={"anonymous_browsing": True, "timezone": "Europe/Oslo"})
    assert body["data"]["anonymous_browsing"] is True
    assert body["data"]["timezone"] == "Europe/Oslo"
    assert await client.app[DB].fetchval("SELECT anonymous_browsing FROM facilities WHERE id = 1") == 1
    await fa.call("PATCH", f"/api/v1/facilities/{other}", json={"anonymous_browsing": True}, expect=404)
    await fa.call("PATCH", "/api/v1/facilities/1", json={"timezone": "Nowhere/Land"}, expect=400)
    await fa.call("PATCH", "/api/v1/facilities/1", json={"anonymous_browsing": "yes"}, expect=400)
    await fa.call("PATCH", "/api/v1/facilities/1", json={"id": 5}, expect=400)
    await fa.call("PATCH", "/api/v1/facilities/1", json={"name": "Unit Z"}, expect=409)
    learner = await signed_in(client, make_user, browsers)
    await learner.call("PATCH", "/api/v1/facilities/1", json={"anonymous_browsing": False}, expect=403)
    assert await client.app[DB].fetchval("SELECT anonymous_browsing FROM facilities WHERE id = ?", (other,)) == 0
    audit = await fa.call("GET", "/api/v1/audit?action=facility_updated")
    assert audit["data"][0]["details"] == {"changed": ["anonymous_browsing", "timezone"]}
    assert audit["meta"]["total"] == 1
