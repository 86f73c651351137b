"""Moodle client and connector against the fake Moodle: bracket parameters, errors in 200s, faults, pushes."""

from collections.abc import AsyncIterator

import aiohttp
import pytest

from appliance.connectors.contract import PushOutcome, Upstream, UserPush
from appliance.connectors.errors import AuthFailed, Malformed, NotPermitted, Rejected, Transient
from appliance.connectors.moodle.client import MoodleClient
from appliance.connectors.moodle.connector import MoodleConnector, build
from tests.fakes.moodle import ENDPOINT, FakeMoodle


@pytest.fixture
async def moodle() -> AsyncIterator[FakeMoodle]:
    fake = await FakeMoodle().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def connector(moodle: FakeMoodle, http: aiohttp.ClientSession, token: str = "moodletoken",  # noqa: S107
              per_page: int = 3) -> MoodleConnector:
    upstream = Upstream(provider_id=1, provider_type="moodle", base_url=moodle.base_url + "/", account_id="",
                        credentials={"token": token}, http=http, request_timeout_s=5.0, per_page=per_page)
    return build(upstream)


def learner(uuid: str = "0f8e7d6c-0000-4000-8000-000000000001", **extra) -> UserPush:
    payload = {"uuid": uuid, "username": "Ada.L", "first_name": "Ada", "last_name": "Lovelace", "email": None,
               "role": "learner", "facility_id": 1, **extra}
    return UserPush(uuid, payload, deactivated=False)


async def test_the_fake_answers_xml_without_the_json_format_and_errors_with_200(moodle, http):
    url = moodle.base_url + ENDPOINT
    async with http.post(url, data={"wstoken": "moodletoken", "wsfunction": "core_webservice_get_site_info"}) as r:
        assert r.status == 200
        assert (await r.text()).startswith('<?xml version="1.0" encoding="UTF-8" ?>\n<RESPONSE>')
    async with http.post(url, data={"wstoken": "nope", "wsfunction": "core_webservice_get_site_info",
                                    "moodlewsrestformat": "json"}) as r:
        assert r.status == 200
        assert (await r.json())["errorcode"] == "invalidtoken"


async def test_probe_classifies_token_and_service_errors(moodle, http):
    await connector(moodle, http).probe(2.0)
    with pytest.raises(AuthFailed, match="invalidtoken"):
        await connector(moodle, http, token="wrong").probe(2.0)  # noqa: S106
    moodle.service_functions.discard("core_webservice_get_site_info")
    with pytest.raises(NotPermitted, match="accessexception"):
        await connector(moodle, http).probe(2.0)
    client = MoodleClient(http, moodle.base_url, "moodletoken")
    with pytest.raises(Rejected, match="invalidrecord"):
        await client.call("no_such_function")


@pytest.mark.parametrize(("kind", "error", "message"), [
    ("html", Malformed, "HTML page instead of JSON"),
    ("huge", Malformed, "byte limit"),
    ("500", Transient, "answered 500"),
    ("503", Transient, "answered 503"),
    ("exception:dmlreadexception", Transient, "dmlreadexception"),
])
async def test_spoiled_answers_fail_with_a_clear_error(moodle, http, kind, error, message):
    moodle.fail_next(1, kind)
    with pytest.raises(error, match=message):
        await connector(moodle, http).probe(5.0)
    await connector(moodle, http).probe(5.0)  # and the next call is fine


async def test_unreachable_is_transient(moodle, http):
    await moodle.down()
    with pytest.raises(Transient):
        await connector(moodle, http).probe(2.0)
    await moodle.up()
    await connector(moodle, http).probe(2.0)


async def test_user_push_is_idempotent_and_converges(moodle, http):
    conn = connector(moodle, http)
    user = learner()
    created = await conn.ensure_user(user, create=True, check_first=False)
    assert created.outcome is PushOutcome.CREATED
    upstream = moodle.state.users[int(created.external_id)]
    assert (upstream["username"], upstream["idnumber"], upstream["email"]) == (
        "ada.l", user.uuid, "ada.l@appliance.invalid")
    assert (await conn.ensure_user(user, create=True)).outcome is PushOutcome.UNCHANGED
    renamed = UserPush(user.uuid, {**user.payload, "last_name": "King"}, deactivated=False)
    assert (await conn.ensure_user(renamed, create=True)).outcome is PushOutcome.UPDATED
    assert upstream["lastname"] == "King"
    assert (await conn.deactivate_user(user.uuid)).outcome is PushOutcome.UPDATED
    assert upstream["suspended"] == 1
    assert (await conn.deactivate_user(user.uuid)).outcome is PushOutcome.UNCHANGED
    assert (await conn.deactivate_user("absent")).outcome is PushOutcome.SKIPPED
    assert moodle.state.user_creates == {user.uuid: 1}


async def test_a_lost_create_answer_is_adopted_not_duplicated(moodle, http):
    conn = connector(moodle, http)
    user = learner()
    moodle.lose_answers(1)
    with pytest.raises(Transient):
        await conn.ensure_user(user, create=True, check_first=False)
    # Even a retry that skips the look-up (it should not, but) adopts the user instead of failing.
    again = await conn.ensure_user(user, create=True, check_first=False)
    assert again.outcome is PushOutcome.UNCHANGED
    assert moodle.state.user_creates == {user.uuid: 1}
    assert moodle.state.rejected_writes[0]["errorcode"] == "invalidparameter"  # the username was taken


async def test_a_real_conflict_is_rejected_with_moodles_reason(moodle, http):
    moodle.debug = True
    moodle.state.add_user("ada.l", "Other", "Person")  # someone else holds the username
    with pytest.raises(Rejected, match="Username already exists: ada.l"):
        await connector(moodle, http).ensure_user(learner(), create=True, check_first=False)


async def test_enrolment_push_is_idempotent(moodle, http):
    conn = connector(moodle, http)
    course = moodle.state.add_course("Algebra")
    user = learner()
    await conn.ensure_user(user, create=True)
    first = await conn.ensure_enrollment(str(course["id"]), user.uuid)
    assert first.outcome is PushOutcome.CREATED
    assert (await conn.ensure_enrollment(str(course["id"]), user.uuid)).outcome is PushOutcome.UNCHANGED
    assert sum(moodle.state.enrollment_creates.values()) == 1
    assert (await conn.drop_enrollment(str(course["id"]), user.uuid)).outcome is PushOutcome.UPDATED
    assert (await conn.drop_enrollment(str(course["id"]), user.uuid)).outcome is PushOutcome.UNCHANGED
    assert moodle.state.members(course["id"]) == []
    with pytest.raises(Rejected, match="not found in Moodle"):
        await conn.ensure_enrollment(str(course["id"]), "nobody")


def seed(moodle: FakeMoodle, students: int = 7) -> tuple[dict, dict, list[dict]]:
    algebra, biology = moodle.state.add_course("Algebra"), moodle.state.add_course("Biology", enablecompletion=0)
    people = [moodle.state.add_user(f"s{i}", "S", str(i), idnumber=f"uuid-{i}") for i in range(students)]
    teacher = moodle.state.add_user("t", "T", "Eacher")
    for person in people:
        moodle.state.enrol(algebra["id"], person["id"])
        moodle.state.enrol(biology["id"], person["id"])
    moodle.state.enrol(algebra["id"], teacher["id"], roleid=3)
    moodle.state.complete(algebra["id"], people[0]["id"], 101, at=1_717_200_000)
    moodle.state.grade(algebra["id"], people[0]["id"], "Homework", 9.5, at=1_717_200_000)
    moodle.state.grade(biology["id"], people[1]["id"], "Lab", 7.0, at=1_717_200_000)
    return algebra, biology, people


async def test_pulls_page_through_courses_users_enrollments_and_milestones(moodle, http):
    algebra, biology, people = seed(moodle)
    conn = connector(moodle, http, per_page=3)
    courses = [c async for page in conn.courses() for c in page]
    assert [c.external_id for c in courses] == [str(algebra["id"]), str(biology["id"])]  # no site course
    users = [u async for page in conn.users() for u in page]
    assert len(users) == 9 - 1  # 7 students + teacher; each once although enrolled twice
    assert len({u.external_id for u in users}) == len(users)
    enrolled = [e async for page in conn.enrollments(str(algebra["id"])) for e in page]
    assert len(enrolled) == 7  # the teacher is not a learner enrollment
    milestones = [m async for page in conn.milestones(str(algebra["id"]), None) for m in page]
    assert {(m.type, m.user_external_id) for m in milestones} == {
        ("assignment_submission", str(people[0]["id"])), ("grade_received", str(people[0]["id"]))}
    bio = [m async for page in conn.milestones(str(biology["id"]), None) for m in page]
    assert [(m.type, m.score) for m in bio] == [("grade_received", 7.0)]  # completion is off there: not asked
    assert moodle.requests["core_completion_get_activities_completion_status"] == 7
    assert moodle.requests["core_enrol_get_enrolled_users"] >= 3  # 8 users at 3 per page


async def test_a_paging_loop_is_detected(moodle, http):
    algebra, _, _ = seed(moodle)
    moodle.paging_loop = True  # limitfrom ignored: the first page forever
    with pytest.raises(Malformed, match="paging loops"):
        _ = [e async for page in connector(moodle, http).enrollments(str(algebra["id"])) for e in page]
    assert moodle.requests["core_enrol_get_enrolled_users"] == 2


async def test_duplicated_records_across_pages_are_read_once(moodle, http):
    algebra, _, people = seed(moodle)
    first = None

    def echo_first(page):
        nonlocal first
        if not page:
            return page
        first = first or page[0]
        return page if page[0]["id"] == first["id"] else [first, *page]  # the first user again on every page

    moodle.rewrite["core_enrol_get_enrolled_users"] = echo_first
    users = [u async for page in connector(moodle, http).users() for u in page]
    assert len(users) == len({u.external_id for u in users}) == 8


async def test_grades_of_a_course_too_big_for_one_answer_are_read_learner_by_learner(moodle, http):
    algebra, _, people = seed(moodle)
    moodle.fail_next(1, "huge", "gradereport_user_get_grade_items")  # the whole-course answer is over the cap
    milestones = [m async for page in connector(moodle, http).milestones(str(algebra["id"]), None) for m in page]
    assert ("grade_received", str(people[0]["id"]), 9.5) in {(m.type, m.user_external_id, m.score) for m in milestones}
    assert moodle.requests["gradereport_user_get_grade_items"] == 1 + 7  # one refused, then one per student


async def test_grades_of_a_whole_course_come_in_one_request(moodle, http):
    algebra, _, _ = seed(moodle)
    _ = [m async for page in connector(moodle, http).milestones(str(algebra["id"]), None) for m in page]
    assert moodle.requests["gradereport_user_get_grade_items"] == 1
