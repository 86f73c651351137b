"""CSV roster import: create or update by username, per-row errors, all-or-nothing or per row."""

from collections.abc import Callable

from aiohttp.test_utils import TestClient

from appliance.keys import DB
from tests.auth.helpers import Browser
from tests.conftest import MakeFacility, MakeUser

Browsers = Callable[[TestClient], Browser]
GOOD = "username,first_name,last_name,doc_id\nann,Ann,Ash,D-1\nben,Ben,Birch,D-2\n"
MIXED = GOOD + "bad name,Bad,Row,D-3\ncid,Cid,Cole,D 4\n"


async def admin_browser(client: TestClient, make_user: MakeUser, browsers: Browsers, role: str) -> Browser:
    admin = await make_user(client, role=role)
    b = browsers(client)
    await b.login(admin["username"], admin["password"])
    return b


async def _csv(b: Browser, body: str | bytes, mode: str = "", expect: int = 200) -> dict:
    query = f"?mode={mode}" if mode else ""
    return await b.call(
        "POST",
        f"/api/v1/users/import{query}",
        data=body if isinstance(body, bytes) else body.encode(),
        headers={"Content-Type": "text/csv"},
        expect=expect,
    )


async def test_all_or_nothing_changes_nothing_on_error(
    client: TestClient, make_user: MakeUser, browsers: Browsers
) -> None:
    b = await admin_browser(client, make_user, browsers, "facility_admin")
    body = await _csv(b, MIXED, expect=422)
    errors = body["error"]["details"]["errors"]
    assert [(e["row"], e["field"]) for e in errors] == [(4, "username"), (5, "doc_id")]
    assert body["error"]["details"]["applied"] is False
    db = client.app[DB]
    assert await db.fetchval("SELECT count(*) FROM users") == 1
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0


async def test_per_row_imports_good_rows_then_updates(
    client: TestClient, make_user: MakeUser, browsers: Browsers
) -> None:
    b = await admin_browser(client, make_user, browsers, "facility_admin")
    body = (await _csv(b, MIXED, "per_row"))["data"]
    assert (body["created"], body["updated"], len(body["errors"])) == (2, 0, 2)
    temps = {t["username"]: t["temporary_password"] for t in body["temporary_passwords"]}
    assert set(temps) == {"ann", "ben"}
    login = await browsers(client).login("ann", temps["ann"])
    assert login["data"]["must_change_password"] is True
    again = (await _csv(b, "username,last_name\nANN,Ashby\nben,Birch\n"))["data"]
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 1, 1)
    db = client.app[DB]
    assert await db.fetchval("SELECT last_name FROM users WHERE username = 'ann'") == "Ashby"
    topics = [r["topic"] for r in await db.fetchall("SELECT topic FROM outbox ORDER BY id")]
    assert topics == ["roster.user.created", "roster.user.created", "roster.user.updated"]
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'roster_imported'") == 2


async def test_import_is_confined_to_the_admins_facility(
    client: TestClient, make_user: MakeUser, make_facility: MakeFacility, browsers: Browsers
) -> None:
    other = await make_facility(client)
    await make_user(client, username="zed", facility_id=other)
    await make_user(client, username="peer", role="facility_admin")
    b = await admin_browser(client, make_user, browsers, "facility_admin")
    rows = f"new1,{other},learner,\nzed,,,\nboss,,system_admin,\npeer,,,Renamed\n"
    body = (await _csv(b, "username,facility_id,role,last_name\n" + rows, "per_row"))["data"]
    assert body["created"] == 0
    assert [e["row"] for e in body["errors"]] == [2, 3, 4, 5]
    assert await client.app[DB].fetchval("SELECT last_name FROM users WHERE username = 'peer'") == "User"
    assert await client.app[DB].fetchval("SELECT first_name FROM users WHERE username = 'zed'") == "Test"


async def test_malformed_csv(client: TestClient, make_user: MakeUser, browsers: Browsers) -> None:
    b = await admin_browser(client, make_user, browsers, "system_admin")
    assert (await _csv(b, b"username\n\xff\xfe\n", expect=400))["error"]["code"] == "invalid_encoding"
    assert (await _csv(b, "name,password\nx,y\n", expect=400))["error"]["code"] == "invalid_csv"
    assert (await _csv(b, "username\na,b\n", expect=400))["error"]["code"] == "invalid_csv"
    assert (await _csv(b, "username\na\x00\n", expect=400))["error"]["code"] == "invalid_csv"
    await _csv(b, "username\nok1\n", mode="sometimes", expect=400)
    learner = await make_user(client)
    lb = browsers(client)
    await lb.login(learner["username"], learner["password"])
    await _csv(lb, "username\nx1\n", expect=403)
    assert await client.app[DB].fetchval("SELECT count(*) FROM users") == 2
