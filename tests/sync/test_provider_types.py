"""Provider types come from the connector registry, not a CHECK in the schema: a plugin's type can be stored,
the old rows survive the table rebuild, and the unmatched-users queue works for every type."""

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from appliance.connectors.registry import connector_types
from appliance.db.migrate import migrate
from appliance.keys import DB
from appliance.sync import connect, validate
from tests.fakes.moodle import FakeMoodle
from tests.sync.helpers import as_user
from tests.sync.test_pull import run_and_wait

# Sample credentials per provider type; a new type (a new connector) must add one here.
SAMPLE_CREDENTIALS = {
    "canvas_oss": {"access_token": "t"},
    "canvas_cloud": {"access_token": "t"},
    "moodle": {"token": "moodletoken"},
    "kolibri": {"username": "admin", "password": "pw"},
    "brightspace": {"app_id": "a", "app_key": "b", "user_id": "c", "user_key": "d"},
}


def test_the_rebuilt_providers_table_keeps_every_row_and_reference(tmp_path: Path) -> None:
    db_path = tmp_path / "a.db"
    migrate(db_path, target=7)
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("INSERT INTO providers (id, type, name, base_url, credentials, runtime_state, outbox_floor)"
                     " VALUES (5, 'canvas_oss', 'C', 'http://c', 'sealed', 'auth_failed', 42)")
        conn.execute("INSERT INTO courses (provider_id, external_id, name) VALUES (5, 'x', 'Algebra')")
        conn.execute("INSERT INTO provider_user_mappings (provider_id, external_user_id) VALUES (5, 'u1')")
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT INTO providers (type, name, base_url, credentials) VALUES ('acme', 'A', 'h', 's')")
    conn.close()
    migrate(db_path)
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA foreign_keys = ON")
    try:
        row = conn.execute("SELECT type, name, runtime_state, outbox_floor FROM providers WHERE id = 5").fetchone()
        assert row == ("canvas_oss", "C", "auth_failed", 42)
        with conn:
            conn.execute("INSERT INTO providers (type, name, base_url, credentials) VALUES ('acme', 'A', 'h', 's')")
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT INTO providers (type, name, base_url, credentials) VALUES ('', 'B', 'h', 's')")
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        with conn:  # the children still point at the rebuilt table: deleting the provider cascades
            conn.execute("DELETE FROM providers WHERE id = 5")
        assert conn.execute("SELECT COUNT(*) FROM courses").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM provider_user_mappings").fetchone()[0] == 0
    finally:
        conn.close()


async def test_an_unregistered_type_is_refused_with_the_known_ones(admin):
    client, user = admin
    body = {"type": "acme", "name": "A", "base_url": "http://a.example", "credentials": {"k": "v"}}
    resp = await client.post("/api/v1/providers", json=body, headers=as_user(user))
    assert resp.status == 400
    message = (await resp.json())["error"]["message"]
    assert "type: must be one of" in message and "moodle" in message and "kolibri" in message


async def test_a_type_registered_by_a_plugin_is_stored_and_served(admin, monkeypatch):
    """A connector type the registry knows (here: a plugin serving "acme" with the Moodle code) needs no schema
    change: the provider is created, runs and pulls."""
    kinds = dict(connector_types())
    kinds["acme"] = replace(kinds["moodle"], name="acme", provider_types=("acme",))
    monkeypatch.setattr(validate, "connector_types", lambda: kinds)
    monkeypatch.setattr(validate, "connector_type", kinds.get)
    monkeypatch.setattr(connect, "connector_type", kinds.get)
    fake = await FakeMoodle().start()
    try:
        fake.state.add_course("Algebra")
        client, user = admin
        body = {"type": "acme", "name": "Acme", "base_url": fake.base_url, "credentials": {"token": "moodletoken"},
                "push_roster": False}
        resp = await client.post("/api/v1/providers", json=body, headers=as_user(user))
        assert resp.status == 201, await resp.text()
        provider = (await resp.json())["data"]
        assert provider["type"] == "acme"
        run = await run_and_wait(client, user, provider["id"])
        assert run["state"] == "succeeded", run["errors"]
        assert await client.app[DB].fetchval("SELECT COUNT(*) FROM courses") == 1
    finally:
        await fake.stop()


@pytest.mark.parametrize("type_", validate.known_types())
async def test_unmatched_users_work_for_every_type(admin, type_):
    client, user = admin
    assert type_ in SAMPLE_CREDENTIALS, f"add sample credentials for the provider type {type_}"
    body = {"type": type_, "name": type_, "base_url": "http://127.0.0.1:9", "credentials": SAMPLE_CREDENTIALS[type_],
            "push_roster": False, "state": "disabled"}
    resp = await client.post("/api/v1/providers", json=body, headers=as_user(user))
    assert resp.status == 201, await resp.text()
    pid = (await resp.json())["data"]["id"]
    await client.app[DB].execute(
        "INSERT INTO provider_user_mappings (provider_id, external_user_id, external_login_id, external_name)"
        " VALUES (?, 'ext-1', 'someone', 'Some One')", (pid,))
    resp = await client.get(f"/api/v1/providers/{pid}/unmatched-users", headers=as_user(user))
    assert resp.status == 200
    data = (await resp.json())["data"]
    assert [(u["external_user_id"], u["external_login_id"]) for u in data] == [("ext-1", "someone")]
