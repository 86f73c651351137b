"""LDAP sign-in through the full app against the real slapd: find-or-create, updates, refusals, outage."""

import json
from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient

from appliance.keys import DB
from tests.auth.helpers import Browser
from tests.auth.slapd import PEOPLE, SERVICE_DN, SERVICE_PW, Slapd, free_port, group_dn
from tests.conftest import AppClientFactory, MakeFacility, MakeUser

Browsers = Callable[[TestClient], Browser]


def ldap_section(slapd: Slapd, **over: Any) -> dict[str, Any]:
    """The [ldap] section for the test directory."""
    return {
        "enabled": True,
        "urls": [slapd.url],
        "bind_dn": SERVICE_DN,
        "bind_password": SERVICE_PW,
        "base_dn": PEOPLE,
        "tls": "starttls",
        "ca_file": str(slapd.pki.ca_cert),
        "role_groups": {
            group_dn("learners"): "learner",
            group_dn("staff"): "facility_admin",
            group_dn("admins"): "system_admin",
        },
        "facility_groups": {group_dn("unit-b"): "2"},
        "connect_timeout": 1.0,
        "receive_timeout": 3,
        **over,
    }


async def ldap_app(
    app_client: AppClientFactory, config_factory: Any, make_facility: MakeFacility, slapd: Slapd, **over: Any
) -> TestClient:
    client = await app_client(config_factory(ldap=ldap_section(slapd, **over)))
    assert await make_facility(client, "Unit B") == 2
    return client


async def test_directory_user_is_created_then_updated(
    app_client: AppClientFactory, config_factory: Any, make_facility: MakeFacility, slapd: Slapd, browsers: Browsers
) -> None:
    client = await ldap_app(app_client, config_factory, make_facility, slapd)
    b = browsers(client)
    body = await b.login("alice", "alice-pass-1")
    user = body["data"]["user"]
    assert (user["auth_source"], user["role"], user["facility_id"]) == ("ldap", "learner", 2)
    assert (user["first_name"], user["last_name"], user["doc_id"]) == ("Alice", "Archer", "A1001")
    db = client.app[DB]
    assert await db.fetchval("SELECT password_hash FROM users WHERE id = ?", (user["id"],)) is None
    # Someone edited the local copy: the next sign-in brings the directory's values back.
    await db.execute("UPDATE users SET first_name = 'Stale', role = 'facility_admin' WHERE id = ?", (user["id"],))
    await browsers(client).login("ALICE", "alice-pass-1")
    row = await db.fetchone("SELECT first_name, role FROM users WHERE id = ?", (user["id"],))
    assert (row["first_name"], row["role"]) == ("Alice", "learner")
    await b.call("GET", "/api/v1/auth/me", expect=401)  # the role change ended the older session
    topics = [r["topic"] for r in await db.fetchall("SELECT topic FROM outbox ORDER BY id")]
    assert topics == ["roster.user.created", "roster.user.updated"]
    payload = json.loads(await db.fetchval("SELECT payload FROM outbox WHERE id = 1"))
    assert payload["username"] == "alice"
    assert await db.fetchval("SELECT count(*) FROM users WHERE auth_source = 'ldap'") == 1


async def test_refusals_look_like_local_ones(
    app_client: AppClientFactory,
    config_factory: Any,
    make_facility: MakeFacility,
    make_user: MakeUser,
    slapd: Slapd,
    browsers: Browsers,
) -> None:
    client = await ldap_app(app_client, config_factory, make_facility, slapd)
    b = browsers(client)
    wrong = await b.login("alice", "alice-pass-2", expect=401)
    unknown = await b.login("nobody", "alice-pass-1", expect=401)
    assert wrong["error"] == unknown["error"]
    assert (await b.login("alice", "", expect=400))["error"]["code"] == "invalid_password"
    assert (await b.login("*)(uid=*))(|(uid=*", "x-pass-1", expect=400))["error"]["code"] == "invalid_username"
    await b.login("carol", "carol-pass-1")  # system_admin through the admins group
    await b.call("GET", "/api/v1/users")  # an admin route: the directory role took effect


async def test_local_account_wins_and_is_never_taken_over(
    app_client: AppClientFactory,
    config_factory: Any,
    make_facility: MakeFacility,
    make_user: MakeUser,
    slapd: Slapd,
    browsers: Browsers,
) -> None:
    client = await ldap_app(app_client, config_factory, make_facility, slapd)
    await make_user(client, username="bob", password="local bob 1")
    await browsers(client).login("bob", "bob-pass-1", expect=401)  # the directory password does not open it
    await browsers(client).login("bob", "local bob 1")


async def test_deactivated_directory_user_is_refused(
    app_client: AppClientFactory, config_factory: Any, make_facility: MakeFacility, slapd: Slapd, browsers: Browsers
) -> None:
    client = await ldap_app(app_client, config_factory, make_facility, slapd)
    uid = (await browsers(client).login("dave", "dave-pass-1"))["data"]["user"]["id"]
    await client.app[DB].execute("UPDATE users SET deactivated_at = '2026-01-01T00:00:00.000Z' WHERE id = ?", (uid,))
    await browsers(client).login("dave", "dave-pass-1", expect=401)


async def test_directory_down_local_accounts_still_work(
    app_client: AppClientFactory,
    config_factory: Any,
    make_facility: MakeFacility,
    make_user: MakeUser,
    slapd: Slapd,
    browsers: Browsers,
) -> None:
    client = await ldap_app(
        app_client, config_factory, make_facility, slapd, urls=[f"ldap://127.0.0.1:{free_port()}"], tls="none"
    )
    body = await browsers(client).login("alice", "alice-pass-1", expect=503)
    assert body["error"]["code"] == "directory_unavailable"
    admin = await make_user(client, role="system_admin")
    await browsers(client).login(admin["username"], admin["password"])  # break-glass local admin
