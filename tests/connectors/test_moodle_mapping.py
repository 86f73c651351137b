"""Moodle mapping: pure functions over recorded payloads (shapes of lms-contracts.md §4), bad input included."""

import json
from pathlib import Path

import pytest

from appliance.connectors.contract import CredentialsInvalid
from appliance.connectors.errors import AuthFailed, Malformed, NotFound, NotPermitted, Rejected
from appliance.connectors.moodle import check_credentials, mapping
from appliance.connectors.moodle.client import classify, encode

DATA = Path(__file__).parent / "data" / "moodle"


def load(name: str):
    return json.loads((DATA / f"{name}.json").read_text())


def test_courses_skip_the_site_course_and_map_dates_and_visibility():
    courses = [c for c in load("core_course_get_courses") if not mapping.is_site_course(c)]
    records = [mapping.course_record(c, "https://moodle.example.org/") for c in courses]
    assert [r.external_id for r in records] == ["7", "9"]
    algebra, draft = records
    assert (algebra.name, algebra.code, algebra.state) == ("Algebra I", "ALG1", "available")
    assert algebra.start_at == "2024-01-01T00:00:00Z"
    assert algebra.end_at == "2024-07-01T00:00:00Z"
    assert algebra.external_url == "https://moodle.example.org/course/view.php?id=7"
    assert (draft.name, draft.state, draft.start_at) == ("Draft course", "unpublished", None)  # "0" is no date


def test_enrolled_users_map_to_external_users_ids_as_text():
    users = [mapping.external_user(u) for u in load("core_enrol_get_enrolled_users")]
    ada, grace, numeric = users
    assert (ada.external_id, ada.sis_id, ada.login_id, ada.email) == (
        "31", "2f1c5a7e-7d34-4a4f-9b1e-0c6c1b8f2a10", "ada", "ada@example.org")
    assert (ada.first_name, ada.last_name, ada.name) == ("Ada", "Lovelace", "Ada Lovelace")
    assert (grace.external_id, grace.sis_id, grace.email) == ("32", None, None)  # "" is absent
    assert (numeric.login_id, numeric.sis_id) == ("1234", "5678")  # numbers where strings belong


def test_only_students_become_enrollments():
    users = load("core_enrol_get_enrolled_users")
    students = [mapping.enrollment_record(u, "7") for u in users if mapping.is_student(u)]
    assert [(e.external_id, e.user_external_id, e.state) for e in students] == [("7:31", "31", "active"),
                                                                             ("7:33", "33", "active")]


def test_completions_become_milestones_by_module_since_the_cursor():
    data = load("core_completion_get_activities_completion_status")
    records = mapping.completion_milestones(data, "7", "31", since=0)
    assert [(m.external_id, m.type, m.is_completed) for m in records] == [
        ("cm101:u31", "assignment_submission", True),
        ("cm102:u31", "quiz_submission", False),  # complete-fail: an attempt, not a completion
        ("cm104:u31", "discussion_post", True),  # state and time sent as strings
    ]
    assert records[0].occurred_at == "2024-06-01T00:00:00Z"
    later = mapping.completion_milestones(data, "7", "31", since=mapping.since_seconds("2024-06-02T00:00:00Z"))
    assert [m.external_id for m in later] == ["cm102:u31", "cm104:u31"]


def test_grades_become_grade_received_milestones():
    records = mapping.grade_milestones(load("gradereport_user_get_grade_items"), "7", since=0)
    assert [(m.external_id, m.user_external_id, m.score) for m in records] == [("gi501:u31", "31", 87.5),
                                                                              ("gi503:u31", "31", 43.75)]
    assert all(m.type == "grade_received" and m.is_completed for m in records)


@pytest.mark.parametrize(("payload", "message"), [
    ({"fullname": "no id"}, "no usable id"),
    ({"id": None}, "no usable id"),
    ({"id": {"nested": 1}}, "no usable id"),
    ({"id": True}, "no usable id"),
    ("just a string", "not an object"),
])
def test_users_without_a_usable_id_are_refused_clearly(payload, message):
    with pytest.raises(Malformed, match=message):
        mapping.external_user(payload)


def test_reports_of_the_wrong_shape_are_refused_clearly():
    with pytest.raises(Malformed, match="no statuses list"):
        mapping.completion_milestones({"statuses": "none"}, "7", "31", 0)
    with pytest.raises(Malformed, match="no gradeitems list"):
        mapping.grade_milestones({"usergrades": [{"userid": 31}]}, "7", 0)


def test_user_create_uses_moodles_username_alphabet_and_the_uuid_as_idnumber():
    payload = {"uuid": "2f1c5a7e", "username": "Ada Lovelace+1", "first_name": "Ada", "last_name": "", "email": None}
    body = mapping.user_create(payload, deactivated=True)
    assert body["username"] == "ada_lovelace_1"
    assert body["idnumber"] == "2f1c5a7e"
    assert body["email"] == "ada_lovelace_1@appliance.invalid"
    assert (body["firstname"], body["lastname"], body["auth"], body["suspended"]) == ("Ada", "-", "manual", 1)
    password = body["password"]
    assert len(password) >= 8 and any(c.isdigit() for c in password) and any(not c.isalnum() for c in password)


def test_user_changes_only_what_differs():
    payload = {"uuid": "u", "username": "ada", "first_name": "Ada", "last_name": "Lovelace", "email": "a@x.org"}
    current = {"firstname": "Ada", "lastname": "Lovelace", "email": "a@x.org", "suspended": 0}
    assert mapping.user_changes(current, payload, deactivated=False) == {}
    assert mapping.user_changes(current, payload, deactivated=True) == {"suspended": 1}
    assert mapping.user_changes({**current, "lastname": "L"}, payload, False) == {"lastname": "Lovelace"}


def test_parameters_are_encoded_in_php_bracket_form():
    form = encode({"users": [{"username": "ada", "suspended": True}], "field": "idnumber",
                   "options": [{"name": "limitfrom", "value": 0}]})
    assert form == [("users[0][username]", "ada"), ("users[0][suspended]", "1"), ("field", "idnumber"),
                    ("options[0][name]", "limitfrom"), ("options[0][value]", "0")]


def test_error_bodies_are_classified_by_errorcode_not_status():
    errors = load("errors")
    assert isinstance(classify(errors["invalidtoken"]), AuthFailed)
    assert isinstance(classify(errors["requireloginerror"]), AuthFailed)
    assert isinstance(classify(errors["accessexception"]), NotPermitted)
    assert isinstance(classify(errors["invalidrecord"]), NotFound)
    rejected = classify(errors["invalidparameter"])
    assert type(rejected) is Rejected and "Username already exists" in str(rejected)
    assert isinstance(classify(errors["tokenlogin"]), Rejected)
    assert classify({"users": []}) is None
    assert classify([{"exception": "looks like one but is a list item"}]) is None


def test_credentials_are_exactly_one_token():
    assert check_credentials({"token": "abc123"}) == {"token": "abc123"}
    for bad in ({}, {"token": ""}, {"token": "abc", "extra": "x"}, {"token": "a b"}, {"token": 5}):
        with pytest.raises(CredentialsInvalid):
            check_credentials(bad)
