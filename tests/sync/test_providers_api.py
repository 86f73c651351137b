"""Provider API: validation, encrypted credentials, role and facility scoping, the test probe."""

import stat

import pytest

from appliance.keys import CONFIG, DB
from tests.sync.helpers import as_user
from tests.sync.test_push import add_provider

VALID = {
    "type": "canvas_cloud",
    "name": "Canvas",
    "base_url": "http://127.0.0.1:9",
    "account_id": 1,
    "credentials": {"access_token": "secret-token-123"},
}


async def test_credentials_are_encrypted_and_never_returned(admin):
    client, user = admin
    resp = await client.post("/api/v1/providers", json=VALID, headers=as_user(user))
    assert resp.status == 201
    data = (await resp.json())["data"]
    assert "credentials" not in data
    assert data["state"] == "enabled"
    assert data["push_roster"] is True
    assert data["account_id"] == "1"
    raw = await client.app[DB].fetchval("SELECT credentials FROM providers WHERE id = ?", (data["id"],))
    assert raw.startswith("v1:")
    assert "secret-token-123" not in raw
    listing = await (await client.get("/api/v1/providers", headers=as_user(user))).text()
    assert "secret-token-123" not in listing
    key = client.app[CONFIG].paths.data_dir / "secrets" / "sync.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    resp = await client.patch(
        f"/api/v1/providers/{data['id']}", json={"state": "disabled", "push_roster": False}, headers=as_user(user)
    )
    assert (await resp.json())["data"]["state"] == "disabled"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**VALID, "type": "blackboard"}, "type"),
        ({**VALID, "base_url": "ftp://x"}, "base_url"),
        ({**VALID, "credentials": {"password": "x"}}, "credentials"),
        ({**VALID, "credentials": "token"}, "credentials"),
        ({**VALID, "name": ""}, "name"),
        ({**VALID, "state": "paused"}, "state"),
        ({**VALID, "push_roster": "yes"}, "push_roster"),
        ({k: v for k, v in VALID.items() if k != "base_url"}, "base_url"),
    ],
)
async def test_bad_provider_bodies_are_clear_400s(admin, body, field):
    client, user = admin
    resp = await client.post("/api/v1/providers", json=body, headers=as_user(user))
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["details"]["field"] == field
    assert await client.app[DB].fetchval("SELECT COUNT(*) FROM providers") == 0


async def test_bad_json_unknown_fields_and_duplicates(admin):
    client, user = admin
    resp = await client.post(
        "/api/v1/providers", data=b"{nope", headers={**as_user(user), "Content-Type": "application/json"}
    )
    assert resp.status == 400
    resp = await client.post("/api/v1/providers", json={**VALID, "colour": "red"}, headers=as_user(user))
    assert (await resp.json())["error"]["code"] == "unknown_field"
    assert (await client.post("/api/v1/providers", json=VALID, headers=as_user(user))).status == 201
    assert (await client.post("/api/v1/providers", json=VALID, headers=as_user(user))).status == 409
    resp = await client.patch("/api/v1/providers/1", json={"type": "moodle"}, headers=as_user(user))
    assert resp.status == 400
    assert (await client.patch("/api/v1/providers/999", json={"name": "x"}, headers=as_user(user))).status == 404


async def test_roles_and_facility_scoping(admin, make_user, make_facility):
    client, sysadmin = admin
    other = await make_facility(client)
    learner = await make_user(client, role="learner")
    facility_admin = await make_user(client, role="facility_admin")
    dept_admin = await make_user(client, role="department_admin", extra_facilities=(other,))
    assert (await client.get("/api/v1/providers")).status == 401
    assert (await client.get("/api/v1/providers", headers=as_user(learner))).status == 403
    assert (await client.post("/api/v1/providers", json=VALID, headers=as_user(facility_admin))).status == 403
    # Only a system admin creates a provider (its base_url decides where the daemon sends tokens).
    assert (await client.post("/api/v1/providers", json=VALID, headers=as_user(dept_admin))).status == 403
    resp = await client.post("/api/v1/providers", json={**VALID, "facility_id": other}, headers=as_user(dept_admin))
    assert resp.status == 403
    resp = await client.post("/api/v1/providers", json={**VALID, "facility_id": other}, headers=as_user(sysadmin))
    assert resp.status == 201
    scoped = (await resp.json())["data"]["id"]
    # The facility admin of facility 1 does not see the other facility's provider.
    assert (await client.get(f"/api/v1/providers/{scoped}", headers=as_user(facility_admin))).status == 404
    listing = await (await client.get("/api/v1/providers", headers=as_user(facility_admin))).json()
    assert listing["data"] == []
    assert (await client.get(f"/api/v1/providers/{scoped}", headers=as_user(sysadmin))).status == 200


async def test_probe_says_which_part_failed(admin, canvas):
    client, user = admin
    good = await add_provider(client, user, canvas, name="Good")
    bad = await add_provider(client, user, canvas, name="Bad", token="wrong")
    result = (await (await client.post(f"/api/v1/providers/{good['id']}/test", headers=as_user(user))).json())["data"]
    assert result == {"reachable": True, "credentials_valid": True, "permitted": True, "reason": None, "error": None}
    result = (await (await client.post(f"/api/v1/providers/{bad['id']}/test", headers=as_user(user))).json())["data"]
    assert result["reachable"] is True
    assert result["credentials_valid"] is False
    assert result["reason"] == "auth_failed"
    await canvas.down()
    result = (await (await client.post(f"/api/v1/providers/{good['id']}/test", headers=as_user(user))).json())["data"]
    assert result["reachable"] is False
    assert result["reason"] == "unreachable"
