"""Pure Canvas mappings."""

from appliance.connectors.canvas import mapping

LEARNER = {
    "uuid": "0b0e",
    "username": "ada",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "email": "ada@example.test",
    "doc_id": "D1",
    "facility_id": 1,
    "role": "learner",
}


def test_user_create_body_uses_uuid_as_sis_and_login():
    body = mapping.user_create_body(LEARNER)
    assert body["pseudonym"] == {"unique_id": "0b0e", "sis_user_id": "0b0e", "send_confirmation": False}
    assert body["user"]["name"] == "Ada Lovelace"
    assert body["user"]["sortable_name"] == "Lovelace, Ada"
    assert body["communication_channel"]["address"] == "ada@example.test"
    nameless = mapping.user_create_body({"uuid": "x", "username": "bob"})
    assert nameless["user"]["name"] == "bob"
    assert "communication_channel" not in nameless


def test_update_detection():
    current = {
        "name": "Ada Lovelace",
        "sortable_name": "Lovelace, Ada",
        "short_name": "Ada",
        "email": "ada@example.test",
    }
    assert not mapping.user_needs_update(current, LEARNER)
    assert mapping.user_needs_update(current, {**LEARNER, "last_name": "King"})


def test_external_user_and_names():
    user = mapping.external_user(
        {
            "id": 5,
            "name": "Grace Hopper",
            "sortable_name": "Hopper, Grace",
            "sis_user_id": "s5",
            "login_id": "grace",
        }
    )
    assert (user.external_id, user.first_name, user.last_name, user.sis_id) == ("5", "Grace", "Hopper", "s5")
    assert mapping.split_name({"name": "Plato"}) == ("Plato", "")


def test_enrollment_and_submission_mapping():
    record = mapping.enrollment_record(
        {
            "id": "9",
            "course_id": 3,
            "user_id": 4,
            "enrollment_state": "inactive",
            "total_activity_time": 120,
            "grades": {"current_score": 87.5},
        }
    )
    assert (record.external_id, record.state, record.total_activity_time, record.current_score) == (
        "9",
        "dropped",
        120,
        87.5,
    )
    graded = mapping.milestones(
        {
            "id": 1,
            "user_id": 4,
            "workflow_state": "graded",
            "score": 9,
            "submitted_at": "2026-01-01T00:00:00Z",
            "graded_at": "2026-01-02T00:00:00Z",
        },
        "3",
    )
    assert [(m.type, m.is_completed, m.score) for m in graded] == [
        ("assignment_submission", True, None),
        ("grade_received", True, 9.0),
    ]
    assert mapping.milestones({"id": 2, "user_id": 4, "workflow_state": "unsubmitted", "score": None}, "3") == []


def test_analytics_accepts_bare_object_and_list():
    data = {
        "page_views": {"2024-01-24T13:00:00-00:00": 19, "2024-01-24T14:00:00-00:00": 3},
        "participations": [{"created_at": "x", "url": "y"}],
    }
    assert mapping.activity_totals(data) == (22, 1)
    assert mapping.activity_totals([data]) == (22, 1)
    assert mapping.activity_totals([]) == (0, 0)
