"""Pure Brightspace mappings against payloads shaped like the documented Valence answers."""

import pytest

from appliance.connectors.brightspace import mapping
from appliance.connectors.brightspace.mapping import BadAnswer

USER_DATA = {
    "OrgId": 6606, "UserId": 1771, "FirstName": "Ada", "MiddleName": None, "LastName": "Lovelace",
    "UserName": "ada.l", "ExternalEmail": "ada@example.org", "OrgDefinedId": "6f1c9d5e-uuid",
    "UniqueIdentifier": "ada.l", "Activation": {"IsActive": True}, "LastAccessedDate": "2024-05-01T12:00:00.000Z",
    "DisplayName": "Ada Lovelace", "Pronouns": None,
}
ORG_UNIT = {"Identifier": "6609", "Name": "Biology 101", "Code": "BIO101",
            "Type": {"Id": 3, "Code": "Course Offering", "Name": "Course Offering"}}
ORG_UNIT_USER = {
    "User": {"Identifier": "1771", "DisplayName": "Ada Lovelace", "EmailAddress": "ada@example.org",
             "OrgDefinedId": "6f1c9d5e-uuid", "ProfileBadgeUrl": None, "ProfileIdentifier": "Xy12"},
    "Role": {"Id": 110, "Code": None, "Name": "Learner"},
}
GRADE_VALUE_ROW = {
    "User": ORG_UNIT_USER["User"],
    "GradeValue": {
        "DisplayedGrade": "8 / 10", "GradeObjectIdentifier": "88", "GradeObjectName": "Quiz 1",
        "GradeObjectType": 1, "GradeObjectTypeName": "Numeric", "Comments": {"Text": "", "Html": ""},
        "PrivateComments": {"Text": "", "Html": ""}, "LastModified": "2024-05-01T12:00:00.000Z",
        "LastModifiedBy": 169, "ReleasedDate": None, "PointsNumerator": 8.0, "PointsDenominator": 10.0,
        "WeightedNumerator": None, "WeightedDenominator": None,
    },
}
VERSIONS = [
    {"ProductCode": "lp", "LatestVersion": "1.46", "SupportedVersions": ["1.0", "1.9", "1.10", "1.46"]},
    {"ProductCode": "le", "LatestVersion": "1.75", "SupportedVersions": ["1.75", "1.8"]},
    {"ProductCode": "ep", "LatestVersion": "2.5", "SupportedVersions": ["2.5"]},
]


def test_user_data_becomes_an_external_user():
    user = mapping.external_user(USER_DATA)
    assert user.external_id == "1771"
    assert user.sis_id == "6f1c9d5e-uuid"
    assert user.login_id == "ada.l"
    assert (user.name, user.first_name, user.last_name, user.email) == (
        "Ada Lovelace", "Ada", "Lovelace", "ada@example.org")


def test_ids_sent_as_strings_are_the_same_ids():
    assert mapping.external_user({**USER_DATA, "UserId": "1771"}).external_id == "1771"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"UserId": None}, "user.UserId is missing"),
        ({"UserId": True}, "user.UserId is a boolean"),
        ({"UserId": {"Id": 1}}, "user.UserId is missing or not an id"),
        ({"FirstName": ["Ada"]}, "user.FirstName is not text"),
    ],
)
def test_broken_user_data_names_the_field(change, message):
    with pytest.raises(BadAnswer, match=message):
        mapping.external_user({**USER_DATA, **change})


def test_org_unit_and_enrollment_and_grade():
    course = mapping.course_record(ORG_UNIT, "https://lms.example.edu/")
    assert (course.external_id, course.name, course.code) == ("6609", "Biology 101", "BIO101")
    assert course.external_url == "https://lms.example.edu/d2l/home/6609"
    enrollment = mapping.enrollment_record(ORG_UNIT_USER, "6609")
    assert (enrollment.external_id, enrollment.user_external_id, enrollment.state) == ("6609:1771", "1771", "active")
    assert mapping.role_of(ORG_UNIT_USER) == "110"
    grade = mapping.grade_milestone(GRADE_VALUE_ROW, "6609", "88")
    assert grade is not None
    assert (grade.external_id, grade.type, grade.score, grade.occurred_at) == (
        "88:1771", "grade_received", 80.0, "2024-05-01T12:00:00.000Z")
    assert mapping.grade_milestone({**GRADE_VALUE_ROW, "GradeValue": None}, "6609", "88") is None
    as_text = {**GRADE_VALUE_ROW["GradeValue"], "PointsNumerator": "8", "PointsDenominator": "10"}
    assert mapping.grade_milestone({**GRADE_VALUE_ROW, "GradeValue": as_text}, "6609", "88").score == 80.0
    with pytest.raises(BadAnswer, match="PointsNumerator is not a number"):
        mapping.grade_milestone({**GRADE_VALUE_ROW, "GradeValue": {**as_text, "PointsNumerator": "eight"}}, "1", "2")
    grades = [{"Id": 88, "GradeType": "Numeric"}, {"Id": 89, "GradeType": "Text"},
              {"Id": "90", "GradeType": "PassFail"}]
    assert mapping.grade_object_ids(grades) == ["88", "90"]


def test_paging_shapes():
    assert mapping.paged_result_set({"PagingInfo": {"Bookmark": "1771", "HasMoreItems": True}, "Items": [1]}, "p") == (
        [1], "1771")
    assert mapping.paged_result_set({"PagingInfo": {"Bookmark": "", "HasMoreItems": False}, "Items": []}, "p") == (
        [], None)
    with pytest.raises(BadAnswer, match="p.Items is not a list"):
        mapping.paged_result_set({"PagingInfo": {"HasMoreItems": False}, "Items": {}}, "p")
    with pytest.raises(BadAnswer, match="HasMoreItems is not a boolean"):
        mapping.paged_result_set({"PagingInfo": {"HasMoreItems": "true"}, "Items": []}, "p")
    assert mapping.object_list_page({"Next": None, "Objects": [1, 2]}, "g") == ([1, 2], None)
    assert mapping.object_list_page({"Next": "https://x/next", "Objects": []}, "g") == ([], "https://x/next")
    with pytest.raises(BadAnswer, match="g is not an object"):
        mapping.object_list_page("<html>", "g")


def test_versions_pick_the_newest_of_the_wanted_major():
    assert mapping.pick_versions(VERSIONS, {"lp": 1, "le": 1}) == {"lp": "1.46", "le": "1.75"}
    with pytest.raises(BadAnswer, match="no 1.x version of the le API"):
        mapping.pick_versions(VERSIONS[:1], {"lp": 1, "le": 1})


def test_push_bodies_and_change_detection():
    payload = {"uuid": "u-1", "username": "ada", "first_name": "Ada", "last_name": "L", "email": None}
    create = mapping.user_create_body(payload, "110")
    assert create["OrgDefinedId"] == "u-1" and create["UserName"] == "ada" and create["RoleId"] == 110
    assert create["IsActive"] is True and create["SendCreationEmail"] is False
    current = {**mapping.user_fields(payload), "UserId": 5, "Activation": {"IsActive": True}}
    assert not mapping.user_needs_update(current, payload, active=True)
    assert mapping.user_needs_update(current, payload, active=False)
    assert mapping.user_needs_update(current, {**payload, "last_name": "Lovelace"}, active=True)
    roles = [{"Identifier": "109", "DisplayName": "Instructor"}, {"Identifier": "110", "DisplayName": "Learner"}]
    assert mapping.learner_role(roles) == "110"
    with pytest.raises(BadAnswer, match="no role named Learner"):
        mapping.learner_role(roles[:1])
