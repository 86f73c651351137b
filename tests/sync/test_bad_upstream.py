"""Bad input from upstreams (Canvas and Moodle): the pull run fails cleanly with a clear error on the provider,
or copes where the data is still sound (ids as strings, records repeated across pages); the appliance keeps
serving throughout."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from appliance.keys import DB
from tests.sync.helpers import as_user, create_learner
from tests.sync.test_pull import run_and_wait
from tests.sync.upstreams import UPSTREAMS


@dataclass(frozen=True)
class Lists:
    """Where each fake's paged lists live, and how to make its paging loop."""

    courses: str
    users: str
    loop: Callable[[Any, bool], None]  # makes the users list page forever (or stops it)


def canvas_loop(fake: Any, on: bool) -> None:
    fake.link_loop = "GET /api/v1/accounts/{account_id}/users" if on else None


def moodle_loop(fake: Any, on: bool) -> None:
    fake.paging_loop = on


LISTS = {
    "canvas": Lists("GET /api/v1/accounts/{account_id}/courses", "GET /api/v1/accounts/{account_id}/users",
                    canvas_loop),
    "moodle": Lists("core_course_get_courses", "core_enrol_get_enrolled_users", moodle_loop),
}


@pytest.fixture(params=sorted(LISTS))
async def bad(request, sync_client, make_user):
    """(client, admin, fake, lists, provider, local learner) with 8 upstream users in one course, 3 per page."""
    kind = UPSTREAMS[request.param]
    fake = await kind.start()
    client = await sync_client(per_page=3)
    admin = await make_user(client, role="system_admin")
    learner = await create_learner(client)
    course = fake.state.add_course("Algebra")
    people = []
    for i in range(8):
        sis = learner["uuid"] if i == 0 else f"sis-{i}"
        if request.param == "canvas":
            person = fake.state.add_user(f"Person {i}", sis_user_id=sis)
            fake.state.enroll(course["id"], person["id"])
        else:
            person = fake.state.add_user(f"person{i}", "Person", str(i), idnumber=sis)
            fake.state.enrol(course["id"], person["id"])
        people.append(person)
    resp = await client.post("/api/v1/providers", json=kind.provider_body(fake, push_roster=False),
                             headers=as_user(admin))
    assert resp.status == 201, await resp.text()
    provider = (await resp.json())["data"]
    yield client, admin, fake, LISTS[request.param], provider, learner
    await fake.stop()


async def provider_error(client, admin, provider) -> str:
    resp = await client.get(f"/api/v1/providers/{provider['id']}", headers=as_user(admin))
    assert resp.status == 200  # still serving
    return (await resp.json())["data"]["last_error"] or ""


def drop_first_id(page: list[Any]) -> list[Any]:
    return [{k: v for k, v in item.items() if k != "id"} if i == 0 else item for i, item in enumerate(page)]


@pytest.mark.parametrize(("spoil", "message"), [
    ("html", "HTML page instead of JSON"),
    ("huge", "byte limit"),
    ("loop", "paging loops"),
    ("missing_id", "no usable id"),
])
async def test_bad_answers_fail_the_run_with_a_clear_error_and_the_next_run_recovers(bad, spoil, message):
    client, admin, fake, lists, provider, learner = bad
    if spoil == "loop":
        lists.loop(fake, True)
    elif spoil == "missing_id":
        fake.rewrite[lists.users] = drop_first_id
    else:
        fake.fail_next(1, spoil, lists.users)
    run = await run_and_wait(client, admin, provider["id"])
    assert run["state"] == "failed"
    assert message in run["errors"]
    assert run["stage"] == "users"
    error = await provider_error(client, admin, provider)
    assert message in error and "pull run failed at users" in error
    assert (await client.get("/healthz")).status == 200
    # Nothing half-written is trusted: the courses stage had finished, the users stage stored no bad row.
    assert await client.app[DB].fetchval("SELECT COUNT(*) FROM provider_user_mappings WHERE external_user_id = ''") == 0
    lists.loop(fake, False)
    fake.rewrite.clear()
    again = await run_and_wait(client, admin, provider["id"])
    assert again["state"] == "succeeded", again["errors"]
    assert await client.app[DB].fetchval("SELECT COUNT(*) FROM provider_user_mappings") == 8
    assert await provider_error(client, admin, provider) == ""  # the recovered run cleared it


def stringify(page: list[Any]) -> list[Any]:
    """Numbers sent as strings (ids, flags, times), as some proxies and old Moodle releases do."""
    return [{k: (str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v) for k, v in item.items()}
            for item in page]


async def test_numbers_sent_as_strings_are_read_as_the_same_ids(bad):
    client, admin, fake, lists, provider, learner = bad
    fake.rewrite[lists.users] = stringify
    fake.rewrite[lists.courses] = stringify
    run = await run_and_wait(client, admin, provider["id"])
    assert run["state"] == "succeeded", run["errors"]
    db = client.app[DB]
    assert await db.fetchval("SELECT COUNT(*) FROM provider_user_mappings") == 8
    assert await db.fetchval("SELECT matched_by FROM provider_user_mappings WHERE user_id = ?",
                             (learner["id"],)) == "sis_id"
    fake.rewrite.clear()  # the same ids as numbers: the same rows, not new ones
    assert (await run_and_wait(client, admin, provider["id"]))["state"] == "succeeded"
    assert await db.fetchval("SELECT COUNT(*) FROM provider_user_mappings") == 8
    assert await db.fetchval("SELECT COUNT(*) FROM courses") == 1
    assert await db.fetchval("SELECT COUNT(*) FROM enrollments") == 1


async def test_records_repeated_across_pages_are_stored_once(bad):
    client, admin, fake, lists, provider, learner = bad
    first: dict[str, Any] = {}

    def echo_first(page: list[Any]) -> list[Any]:
        if not page:
            return page
        first.setdefault("user", page[0])
        return page if page[0]["id"] == first["user"]["id"] else [first["user"], *page]

    fake.rewrite[lists.users] = echo_first
    run = await run_and_wait(client, admin, provider["id"])
    assert run["state"] == "succeeded", run["errors"]
    assert await client.app[DB].fetchval("SELECT COUNT(*) FROM provider_user_mappings") == 8
    assert await client.app[DB].fetchval("SELECT COUNT(*) FROM enrollments") == 1
