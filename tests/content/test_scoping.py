"""Block lists are scoped by facility: one list per library, changed by department admins only for
libraries seen solely in their facilities."""

from aiohttp.test_utils import TestClient

from appliance.keys import DB
from tests.content.conftest import Library


async def _facility(client: TestClient) -> int:
    res = await client.app[DB].execute("INSERT INTO facilities (name, timezone) VALUES ('Other unit', 'UTC')")
    return int(res.lastrowid or 0)


async def test_department_admin_changes_block_lists_only_within_its_facilities(library: Library) -> None:
    c = library.client
    other = await _facility(c)
    await library.show("testbook", other)  # visible only to the other facility
    await library.show("zimfile", 1, other)  # shared
    await library.show("noindex", 1)  # only ours
    dept = await library.user(role="department_admin")  # facility 1
    root = await library.user(role="system_admin")
    body = {"patterns": ["a/*"]}
    for slug in ("testbook", "zimfile"):
        lib = await library.lib_id(slug)
        assert (await c.put(f"/api/v1/libraries/{lib}/blocklist", json=body, headers=dept)).status == 403, slug
    assert await c.app[DB].fetchval("SELECT COUNT(*) FROM library_blocklist") == 0
    # another facility's list is not even readable; a shared one is
    assert (await c.get(f"/api/v1/libraries/{await library.lib_id('testbook')}/blocklist",
                        headers=dept)).status == 404
    assert (await c.get(f"/api/v1/libraries/{await library.lib_id('zimfile')}/blocklist",
                        headers=dept)).status == 200
    ours = await library.lib_id("noindex")
    assert (await c.put(f"/api/v1/libraries/{ours}/blocklist", json=body, headers=dept)).status == 200
    shared = await library.lib_id("zimfile")
    assert (await c.put(f"/api/v1/libraries/{shared}/blocklist", json=body, headers=root)).status == 200
