"""Kolibri's pure mapping functions against answers recorded from a real Kolibri 0.19.5."""

import csv
import io
import json
import re

import pytest

from appliance.connectors.contract import Capability, CredentialsInvalid
from appliance.connectors.errors import AuthFailed, NotFound, NotPermitted, Rejected, Throttled, Transient
from appliance.connectors.kolibri import CONNECTOR, check_credentials
from appliance.connectors.kolibri import mapping as m
from appliance.connectors.kolibri.client import classify, is_empty_list
from tests.connectors import kolibri_payloads as rec


def test_the_username_key_is_identitys():
    from appliance.auth.usernames import username_key

    for name in ("Jean.Dupont", "ＡＤＡ", "Straße", " x "):
        assert m.username_key(name) == username_key(name)


def test_valid_usernames_are_kept_and_others_get_a_stable_distinct_stand_in():
    assert m.kolibri_username("ada_1") == "ada_1"
    assert m.kolibri_username("Ada") == "Ada"
    mapped = m.kolibri_username("jean.dupont")
    assert re.fullmatch(r"jean_dupont_[0-9a-f]{8}", mapped)
    assert m.kolibri_username("jean.dupont") == mapped  # predictable
    assert m.kolibri_username("Jean.Dupont")[-8:] == mapped[-8:]
    assert m.kolibri_username("jean-dupont") != mapped  # both become jean_dupont_…, digests differ
    assert m.kolibri_username("jean_dupont") == "jean_dupont"
    for name in ("josé", "a@b.example", "x" * 64, "ab-" * 20, "名前"):
        out = m.kolibri_username(name)
        assert re.fullmatch(r"[A-Za-z0-9_]{1,30}", out), (name, out)
    assert len({m.kolibri_username(f"user.{i}") for i in range(2000)}) == 2000


def test_user_payloads_map_to_external_users_with_id_number_as_our_uuid():
    page, pages = m.paged(json.loads(rec.USERS_PAGE), "users")
    assert pages == 2
    admin = m.external_user(page[0])
    assert admin.external_id == "21d07b24e4838047876bb50a522556fa"
    assert admin.login_id == "kadmin" and admin.sis_id is None and admin.email is None
    created = m.external_user(json.loads(rec.CREATED_USER))
    assert created.sis_id == "abc"
    assert (created.first_name, created.last_name, created.name) == ("Ada", "L", "Ada L")


def test_classrooms_and_memberships_map_to_courses_and_enrollments():
    classrooms, pages = m.paged(json.loads(rec.CLASSROOMS), "classrooms")
    assert pages is None
    course = m.course_record(classrooms[0], "http://k.example/")
    assert course.external_id == "14a0fa3ab7969eb9c35d9134a29d41c8"
    assert course.name == "Class 1" and course.state == "available"
    assert course.external_url == "http://k.example/coach/#/14a0fa3ab7969eb9c35d9134a29d41c8/home"
    (membership,) = json.loads(rec.MEMBERSHIPS)
    enrollment = m.enrollment_record(membership, course.external_id)
    assert enrollment.user_external_id == "629419e11b7e356dd17c7db03725cf4c"
    assert enrollment.state == "active" and enrollment.external_id == "c610f7e70e25dc9528f82b2df2c35800"
    with pytest.raises(m.BadAnswer, match="among those of"):
        m.enrollment_record(membership, "f" * 32)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"username": "x"}, "'id' is missing"),
        ({"id": 12345, "username": "x"}, "'id' is int"),
        ({"id": "not-hex", "username": "x"}, "not a 32-digit hex id"),
        ({"id": "a" * 32, "username": None}, "'username' is missing"),
        ({"id": "a" * 32, "username": 7}, "'username' is int"),
        ({"id": "a" * 32, "username": "x", "full_name": ["x"]}, "'full_name' is list"),
        ("a string", "not an object"),
    ],
)
def test_malformed_users_are_refused_with_a_clear_message(payload, message):
    with pytest.raises(m.BadAnswer, match=message):
        m.external_user(payload)


def test_list_shapes_are_checked():
    with pytest.raises(m.BadAnswer, match="where a list of users"):
        m.paged({"detail": "nope"}, "users")
    with pytest.raises(m.BadAnswer, match="total_pages"):
        m.paged({"results": [], "total_pages": "2"}, "users")
    assert is_empty_list(json.loads(rec.ANONYMOUS_USERS_PAGE))
    assert is_empty_list([])
    assert not is_empty_list(json.loads(rec.USERS_PAGE))


def test_summary_csv_maps_to_activity_per_learner_and_resource():
    rows = list(m.csv_rows(csv.reader(io.StringIO(rec.SUMMARY_CSV.lstrip("\ufeff"), newline=""))))
    assert len(rows) == 2
    ids = {"ada_1": "629419e11b7e356dd17c7db03725cf4c"}
    done, started = (m.activity_record(r, ids) for r in rows)
    assert done is not None and started is not None
    assert done.external_id == "b" * 32 + ":" + "a" * 32
    assert done.user_external_id == ids["ada_1"] and done.course_external_id == ""
    assert (done.total_time_s, done.progress) == (321, 1.0)
    assert done.completed_at == "2026-12-06T23:42:10.051Z"
    assert done.occurred_at == "2026-12-06T23:42:10.051Z"
    assert (started.total_time_s, started.progress, started.completed_at) == (12, 0.25, None)
    assert m.activity_record(rows[0], {}) is None  # a learner the facility list does not hold


def test_summary_csv_with_the_bom_and_topic_columns_is_read_by_name():
    text = rec.SUMMARY_CSV.replace("Content id,", "Folder level 1,Content id,").replace(
        ",aaaaaaaa", ",Maths,aaaaaaaa").replace(",cccccccc", ",Maths,cccccccc")
    rows = list(m.csv_rows(csv.reader(io.StringIO(text, newline=""))))  # the BOM is still on the first label
    assert [r[m.CSV_CONTENT][:1] for r in rows] == ["a", "c"]


CLASS_1 = "1b971e13930837a309868ad23d8ab815"


def test_an_active_lessons_resources_are_what_its_classroom_counts_and_match_the_logs_ids():
    draft, fractions = json.loads(rec.LESSONS)
    assert m.lesson_resources(draft, CLASS_1) == set()  # inactive: a coach's draft, hidden from learners
    assigned = m.lesson_resources(fractions, CLASS_1)
    assert assigned == {"b" * 32 + ":" + "a" * 32, "b" * 32 + ":" + "c" * 32}
    # The same ids as the summary-log export's rows for those resources: a row counts where a lesson assigns it.
    rows = list(m.csv_rows(csv.reader(io.StringIO(rec.SUMMARY_CSV, newline=""))))
    logged = {m.activity_record(r, {"ada_1": "1" * 32}).external_id for r in rows}  # type: ignore[union-attr]
    assert logged == assigned


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda lesson: {**lesson, "collection": "2" * 32}, "among those of"),
        (lambda lesson: {**lesson, "active": "true"}, "'active' is str"),
        (lambda lesson: {**lesson, "resources": {"a": 1}}, "'resources' is dict"),
        (lambda lesson: {**lesson, "resources": [{"channel_id": "b" * 32, "content_id": "../x"}]}, "32-digit hex"),
        (lambda lesson: {**lesson, "resources": [{"channel_id": 5, "content_id": "a" * 32}]}, "'channel_id' is int"),
        (lambda lesson: {k: v for k, v in lesson.items() if k != "id"}, "'id' is missing"),
        (lambda lesson: [lesson], "not an object"),
    ],
)
def test_a_malformed_lesson_is_refused_with_a_clear_message(change, message):
    lesson = change(json.loads(rec.LESSONS)[1])
    with pytest.raises(m.BadAnswer, match=re.escape(message)):
        m.lesson_resources(lesson, CLASS_1)


def test_lessons_without_resources_count_nothing():
    lesson = {**json.loads(rec.LESSONS)[1], "resources": None}
    assert m.lesson_resources(lesson, CLASS_1) == set()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.replace("Time Spent (sec)", "Zeit"), "lacks the column"),
        (lambda t: t.replace("321.0", "lots"), "non-numeric time spent"),
        (lambda t: t.replace("321.0", "-1"), "impossible time spent"),
        (lambda t: t.replace("1.0000", "1.5"), "progress above 1"),
        (lambda t: t.replace("2026-12-06 23:42:10.051346+00:00,321", "yesterday,321"), "unreadable"),
        (lambda t: t.replace(",video", ",video,extra"), "fields on line 2"),
        (lambda t: t.replace("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "../../etc"), "valid channel/content ids"),
    ],
)
def test_malformed_csv_is_refused_with_a_clear_message(change, message):
    text = change(rec.SUMMARY_CSV)
    def read() -> None:
        for row in m.csv_rows(csv.reader(io.StringIO(text, newline=""))):
            m.activity_record(row, {"ada_1": "1" * 32})

    with pytest.raises(m.BadAnswer, match=re.escape(message)):
        read()


def test_create_body_and_name_changes():
    payload = {"uuid": "u-1", "username": "jean.dupont", "first_name": "Jean", "last_name": "Dupont"}
    body = m.user_create_body(payload, rec.FACILITY, "secret")
    assert body["username"] == m.kolibri_username("jean.dupont")
    assert body["id_number"] == "u-1" and body["facility"] == rec.FACILITY and body["full_name"] == "Jean Dupont"
    assert not m.user_needs_update({"full_name": "Jean Dupont"}, payload)
    assert m.user_needs_update({"full_name": "Jean D"}, payload)
    assert m.full_name({"uuid": "u", "username": "x", "first_name": "y" * 300})[:5] == "yyyyy"
    assert len(m.full_name({"uuid": "u", "username": "x", "first_name": "y" * 300})) == 120


def test_errors_are_classified_with_kolibris_text():
    taken = classify(400, {}, json.loads(rec.USERNAME_TAKEN))
    assert isinstance(taken, Rejected) and "USERNAME_ALREADY_EXISTS" in str(taken)
    assert "already exists" in str(taken)
    assert "only letters, numbers" in str(classify(400, {}, json.loads(rec.USERNAME_INVALID)))
    assert isinstance(classify(404, {}, json.loads(rec.NOT_FOUND)), NotFound)
    assert isinstance(classify(403, {}, []), NotPermitted)
    assert isinstance(classify(401, {}, []), AuthFailed)
    assert isinstance(classify(500, {}, rec.DUPLICATE_MEMBERSHIP_500), Transient)
    assert isinstance(classify(429, {"Retry-After": "3"}, ""), Throttled)
    assert classify(201, {}, {}) is None


def test_credentials_and_declaration():
    assert check_credentials({"username": "a", "password": "b"}) == {"username": "a", "password": "b"}
    assert check_credentials({"username": "a", "password": "b", "facility": rec.FACILITY})["facility"] == rec.FACILITY
    for bad in ({"username": "a"}, {"username": "a", "password": ""}, {"username": "a", "password": "b", "x": 1},
                {"username": "a", "password": "b", "facility": "Unit A"}, {"username": 1, "password": "b"}):
        with pytest.raises(CredentialsInvalid):
            check_credentials(bad)
    assert CONNECTOR.provider_types == ("kolibri",)
    assert CONNECTOR.has(Capability.ACTIVITY) and CONNECTOR.has(Capability.COURSE_RESOURCES)
