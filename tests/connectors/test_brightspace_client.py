"""The Brightspace connector against the fake: auth (ID-key skew, OAuth rotation), paging, limits, pushes."""

import pytest

from appliance.connectors.brightspace.connector import BrightspaceConnector, build
from appliance.connectors.brightspace.mapping import BadAnswer
from appliance.connectors.contract import PushOutcome, Upstream, UserPush
from appliance.connectors.errors import AuthFailed, ForeignLink, NotFound, Throttled, Transient
from tests.fakes.brightspace import LEARNER_ROLE


def connect(fake, http, creds=None, save=None, per_page=100) -> BrightspaceConnector:
    return build(Upstream(provider_id=1, provider_type="brightspace", base_url=fake.base_url, account_id="",
                          credentials=creds or fake.id_key_credentials(), http=http, request_timeout_s=5.0,
                          per_page=per_page, save_credentials=save))


def push(uuid: str, username: str = "ada", deactivated: bool = False, **fields) -> UserPush:
    payload = {"uuid": uuid, "username": username, "first_name": "Ada", "last_name": "Lovelace", "email": None}
    return UserPush(uuid=uuid, payload={**payload, **fields}, deactivated=deactivated)


async def test_id_key_learns_the_skew_from_the_servers_403_and_retries_once(brightspace, http):
    connector = connect(brightspace, http)
    await connector.probe(5.0)
    assert brightspace.responses[403] == 1  # one "Timestamp out of range", then signed with the server's clock
    assert abs(connector.client.auth.skew - brightspace.clock_ahead_s) <= 1
    await connector.probe(5.0)
    assert brightspace.responses[403] == 1


async def test_wrong_keys_are_auth_failed_with_brightspaces_reason(brightspace, http):
    creds = {**brightspace.id_key_credentials(), "user_key": "not-the-key"}
    with pytest.raises(AuthFailed, match="Invalid token"):
        await connect(brightspace, http, creds).probe(5.0)
    brightspace.apps.clear()
    with pytest.raises(AuthFailed, match="Invalid token"):
        await connect(brightspace, http).probe(5.0)


async def test_a_clock_the_server_keeps_refusing_is_not_retried_forever(brightspace, http):
    brightspace.window_s = -1  # no timestamp is ever in range
    with pytest.raises(AuthFailed, match="clock skew"):
        await connect(brightspace, http).probe(5.0)
    assert brightspace.responses[403] == 2


async def test_oauth_stores_the_rotated_refresh_token_before_using_it(brightspace, http):
    creds = brightspace.oauth_credentials()
    first_token = creds["refresh_token"]
    uses: list[int] = []
    saved: list[dict] = []
    used: set[str] = set()
    confirm = brightspace._confirm

    def spy(refresh_token):
        used.update(t for t, (_, rt) in brightspace.access_tokens.items() if rt == refresh_token)
        confirm(refresh_token)

    brightspace._confirm = spy

    async def save(new):
        # Nothing has used the new pair yet: the fake has not seen its access token.
        uses.append(sum(1 for token, (_, rt) in brightspace.access_tokens.items()
                        if rt == new["refresh_token"] and token in used))
        saved.append(new)

    connector = connect(brightspace, http, creds, save)
    await connector.probe(5.0)
    assert len(saved) == 1 and saved[0]["refresh_token"] != first_token
    assert uses == [0]
    assert first_token not in brightspace.live_refresh_tokens()  # rotated: the old one is dead once the new is used
    # A fresh connector built from what was stored works without refreshing (the access token was stored too).
    again = connect(brightspace, http, saved[-1], save)
    await again.probe(5.0)
    assert brightspace.refreshes == 1
    # The access token dies early (401): refresh once, store, retry.
    brightspace.access_tokens.clear()
    await again.probe(5.0)
    assert brightspace.refreshes == 2 and len(saved) == 2
    assert uses == [0, 0]
    # The connector still holding the first stored pair has a dead refresh token now.
    stale = connect(brightspace, http, {**saved[0], "access_token": ""}, save)
    with pytest.raises(AuthFailed, match="invalid_grant"):
        await stale.probe(5.0)


async def test_oauth_with_strict_rotation_and_a_failed_store_keeps_the_pair_for_the_next_call(brightspace, http):
    brightspace.rotation = "strict"
    creds = brightspace.oauth_credentials()
    attempts: list[dict] = []

    async def flaky_save(new):
        attempts.append(new)
        if len(attempts) == 1:
            raise OSError("disk full")

    connector = connect(brightspace, http, creds, flaky_save)
    with pytest.raises(Transient, match="could not store the rotated refresh token"):
        await connector.probe(5.0)
    await connector.probe(5.0)  # stores the same pair first, then uses it: no second refresh
    assert brightspace.refreshes == 1
    assert attempts[0] == attempts[1]


async def test_bad_oauth_client_is_auth_failed(brightspace, http):
    creds = {**brightspace.oauth_credentials(), "client_secret": "wrong"}
    with pytest.raises(AuthFailed, match="invalid_client|401"):
        await connect(brightspace, http, creds).probe(5.0)


async def test_both_paging_styles_read_everything(brightspace, http):
    brightspace.page_size = 7
    course = brightspace.add_course("Biology")
    ou = int(course["Identifier"])
    users = [brightspace.add_user(f"U{i}", "X") for i in range(50)]
    for user in users[:30]:
        brightspace.enroll(ou, user["UserId"])
    brightspace.enroll(ou, users[40]["UserId"], role_id=109)  # an instructor is not a learner
    quiz = brightspace.add_grade(ou, "Quiz")
    brightspace.add_grade(ou, "Notes", grade_type="Text")
    for user in users[:25]:
        brightspace.set_grade(ou, quiz, user["UserId"], 7.5)
    connector = connect(brightspace, http, per_page=10)
    pulled = [u async for page in connector.users() for u in page]
    assert len(pulled) == 50 and len({u.external_id for u in pulled}) == 50
    assert brightspace.requests["GET /d2l/api/lp/{v}/users/"] == 8  # 50 users, 7 a page
    courses = [c async for page in connector.courses() for c in page]
    assert [c.name for c in courses] == ["Biology"]
    enrolled = [e async for page in connector.enrollments(str(ou)) for e in page]
    assert len(enrolled) == 30
    grades = [m async for page in connector.milestones(str(ou), None) for m in page]
    assert len(grades) == 25 and {g.score for g in grades} == {75.0}
    assert brightspace.requests["GET /d2l/api/le/{v}/{ou}/grades/{gid}/values/"] == 3  # ObjectListPage, 10 a page
    assert [m async for page in connector.milestones(str(ou), "2030-01-01T00:00:00Z") for m in page] == []


async def test_next_leaving_the_providers_origin_is_refused(brightspace, http):
    course = brightspace.add_course("Biology")
    ou = int(course["Identifier"])
    quiz = brightspace.add_grade(ou, "Quiz")
    for i in range(3):
        brightspace.set_grade(ou, quiz, brightspace.add_user(f"U{i}")["UserId"], 1)
    brightspace.foreign_next = "http://169.254.169.254"
    with pytest.raises(ForeignLink, match="away from the provider's origin"):
        [m async for page in connect(brightspace, http, per_page=1).milestones(str(ou), None) for m in page]


async def test_throttling_and_outages_are_classified(brightspace, http):
    connector = connect(brightspace, http)
    await connector.probe(5.0)
    brightspace.throttle_next(1, retry_after=7)
    with pytest.raises(Throttled) as caught:
        await connector.probe(5.0)
    assert caught.value.retry_after == 7
    brightspace.fail_next(1, 503)
    with pytest.raises(Transient, match="503"):
        await connector.probe(5.0)
    brightspace.down = True
    with pytest.raises(Transient):
        await connector.probe(5.0)


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("html", "expected JSON, got text/html"),
        ("huge", "larger than"),
        ("huge_stream", "larger than"),
        ("loop", "paging loop"),
        ("missing_fields", "user.UserId is missing"),
        ("wrong_types", "user.FirstName is not text"),
    ],
)
async def test_bad_answers_fail_with_a_clear_error(brightspace, http, mode, message):
    for i in range(5):
        brightspace.add_user(f"U{i}")
    brightspace.bad_users = mode
    with pytest.raises(BadAnswer, match=message):
        [u async for page in connect(brightspace, http).users() for u in page]


async def test_numbers_as_strings_and_duplicates_across_pages_are_read_once(brightspace, http):
    brightspace.page_size = 4
    for i in range(10):
        brightspace.add_user(f"U{i}")
    brightspace.bad_users = "string_ids"
    assert len([u async for page in connect(brightspace, http).users() for u in page]) == 4
    brightspace.bad_users = "duplicates"
    pulled = [u.external_id async for page in connect(brightspace, http).users() for u in page]
    assert sorted(pulled) == sorted(str(uid) for uid in brightspace.users)


async def test_pushes_are_idempotent_and_look_up_by_org_defined_id(brightspace, http):
    connector = connect(brightspace, http)
    course = brightspace.add_course("Biology")
    first = await connector.ensure_user(push("uuid-1"), create=True, check_first=False)
    assert first.outcome is PushOutcome.CREATED
    again = await connector.ensure_user(push("uuid-1"), create=True)
    assert (again.outcome, again.external_id) == (PushOutcome.UNCHANGED, first.external_id)
    renamed = await connector.ensure_user(push("uuid-1", last_name="Byron"), create=True)
    assert renamed.outcome is PushOutcome.UPDATED
    assert brightspace.users[int(first.external_id)]["LastName"] == "Byron"
    # The answer of a create is lost: the retry (unattempted path: create first) adopts the user it made.
    brightspace.lose_answers(1)
    with pytest.raises(Transient):
        await connector.ensure_user(push("uuid-2", username="grace"), create=True, check_first=False)
    adopted = await connector.ensure_user(push("uuid-2", username="grace"), create=True, check_first=False)
    assert adopted.outcome is PushOutcome.UNCHANGED
    assert brightspace.user_creates == {"uuid-1": 1, "uuid-2": 1}
    enrolled = await connector.ensure_enrollment(course["Identifier"], "uuid-1")
    assert enrolled.outcome is PushOutcome.CREATED
    assert (await connector.ensure_enrollment(course["Identifier"], "uuid-1")).outcome is PushOutcome.UNCHANGED
    assert brightspace.enrollments[(int(course["Identifier"]), int(first.external_id))] == LEARNER_ROLE
    assert sum(brightspace.enroll_creates.values()) == 1
    assert (await connector.drop_enrollment(course["Identifier"], "uuid-1")).outcome is PushOutcome.UPDATED
    assert (await connector.drop_enrollment(course["Identifier"], "uuid-1")).outcome is PushOutcome.UNCHANGED
    assert (await connector.deactivate_user("uuid-1")).outcome is PushOutcome.UPDATED
    assert brightspace.users[int(first.external_id)]["Activation"] == {"IsActive": False}
    assert (await connector.deactivate_user("uuid-1")).outcome is PushOutcome.UNCHANGED
    assert (await connector.deactivate_user("nobody")).outcome is PushOutcome.SKIPPED
    with pytest.raises(NotFound):
        await connector.ensure_enrollment(course["Identifier"], "nobody")


async def test_a_taken_username_is_rejected_with_brightspaces_error(brightspace, http):
    brightspace.add_user("Other", user_name="ada")
    from appliance.connectors.errors import Rejected

    with pytest.raises(Rejected) as caught:
        await connect(brightspace, http).ensure_user(push("uuid-9"), create=True, check_first=False)
    assert caught.value.status == 400 and "Username is already in use" in str(caught.value.body)
