"""In-memory state of the fake Canvas: users, pseudonyms, courses, enrollments, work."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def now_iso() -> str:
    """Canvas-style timestamp."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class CanvasState:
    """Every object of the fake instance, plus write logs that tests assert exactly-once against."""

    account_id: int = 1
    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    logins: dict[int, dict[str, Any]] = field(default_factory=dict)
    courses: dict[int, dict[str, Any]] = field(default_factory=dict)
    enrollments: dict[int, dict[str, Any]] = field(default_factory=dict)
    assignments: dict[int, dict[str, Any]] = field(default_factory=dict)
    submissions: dict[int, dict[str, Any]] = field(default_factory=dict)
    activity: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    # Successful creates, keyed by SIS id / (course, user): a value above 1 is a duplicate.
    user_creates: Counter[str] = field(default_factory=Counter)
    enrollment_creates: Counter[tuple[int, int]] = field(default_factory=Counter)
    enrollment_deletes: Counter[tuple[int, int]] = field(default_factory=Counter)
    user_updates: Counter[str] = field(default_factory=Counter)
    rejected_writes: list[dict[str, Any]] = field(default_factory=list)
    _next: int = 100
    _index_key: tuple[int, int] = (0, 0)
    _by_sis: dict[str, int] = field(default_factory=dict)
    _by_login: dict[str, int] = field(default_factory=dict)

    def next_id(self) -> int:
        """A fresh object id (shared sequence, like a busy shard)."""
        self._next += 1
        return self._next

    # ---- users ---------------------------------------------------------------------------------
    def add_user(
        self,
        name: str,
        *,
        sis_user_id: str | None = None,
        login_id: str | None = None,
        email: str | None = None,
        short_name: str | None = None,
        sortable_name: str | None = None,
    ) -> dict[str, Any]:
        """Create a user with one pseudonym in the account."""
        user_id = self.next_id()
        parts = name.split(" ", 1)
        user = {
            "id": user_id,
            "name": name,
            "short_name": short_name or name,
            "sortable_name": sortable_name or (f"{parts[1]}, {parts[0]}" if len(parts) == 2 else name),
            "sis_user_id": sis_user_id,
            "login_id": login_id or f"user{user_id}",
            "email": email,
            "avatar_url": "https://canvas.invalid/images/messages/avatar-50.png",
            "created_at": now_iso(),
            "workflow_state": "registered",
        }
        self.users[user_id] = user
        by_sis, by_login = self._indexes()
        login_pk = self.next_id()
        self.logins[login_pk] = {
            "id": login_pk,
            "user_id": user_id,
            "account_id": self.account_id,
            "unique_id": user["login_id"],
            "sis_user_id": sis_user_id,
            "workflow_state": "active",
            "created_at": user["created_at"],
        }
        if sis_user_id:
            by_sis[sis_user_id] = user_id
        by_login[user["login_id"].lower()] = user_id
        self._index_key = (id(self.logins), len(self.logins))
        return user

    def _indexes(self) -> tuple[dict[str, int], dict[str, int]]:
        """SIS id → user and lower-cased login → user, rebuilt when pseudonyms change (tests edit them)."""
        key = (id(self.logins), len(self.logins))
        if self._index_key != key:
            self._by_sis = {p["sis_user_id"]: p["user_id"] for p in self.logins.values() if p["sis_user_id"]}
            self._by_login = {p["unique_id"].lower(): p["user_id"] for p in self.logins.values()}
            self._index_key = key
        return self._by_sis, self._by_login

    def find_user(self, ref: str) -> dict[str, Any] | None:
        """Resolve `123`, `sis_user_id:X` or `sis_login_id:X` like Canvas's api_find."""
        by_sis, by_login = self._indexes()
        if ref.startswith("sis_user_id:"):
            user_id = by_sis.get(ref.removeprefix("sis_user_id:"))
            return None if user_id is None else self.users.get(user_id)
        if ref.startswith("sis_login_id:"):
            user_id = by_login.get(ref.removeprefix("sis_login_id:").lower())
            return None if user_id is None else self.users.get(user_id)
        if ref.isdigit():
            return self.users.get(int(ref))
        return None

    def sis_taken(self, sis: str) -> bool:
        """Whether a pseudonym already holds this SIS id."""
        return sis in self._indexes()[0]

    def login_taken(self, unique_id: str) -> bool:
        """Whether a pseudonym already holds this login id (case-insensitive, as Canvas does)."""
        return unique_id.lower() in self._indexes()[1]

    # ---- courses and enrollments -------------------------------------------------------------------
    def add_course(
        self,
        name: str,
        *,
        course_code: str | None = None,
        sis_course_id: str | None = None,
        workflow_state: str = "available",
    ) -> dict[str, Any]:
        """Create a course in the account."""
        course_id = self.next_id()
        course = {
            "id": course_id,
            "name": name,
            "course_code": course_code or name[:12],
            "workflow_state": workflow_state,
            "account_id": self.account_id,
            "root_account_id": self.account_id,
            "enrollment_term_id": 1,
            "grading_standard_id": None,
            "start_at": None,
            "end_at": None,
            "sis_course_id": sis_course_id,
            "uuid": f"course-{course_id:08d}",
            "time_zone": "America/Chicago",
            "is_public": False,
        }
        self.courses[course_id] = course
        return course

    def enroll(
        self, course_id: int, user_id: int, *, type_: str = "StudentEnrollment", state: str = "active"
    ) -> dict[str, Any]:
        """Create (or return the live) enrollment of a user in a course, as Canvas's enroll_user does."""
        for enrollment in self.enrollments.values():
            if (enrollment["course_id"], enrollment["user_id"], enrollment["type"]) == (
                course_id,
                user_id,
                type_,
            ) and enrollment["enrollment_state"] != "deleted":
                return enrollment
        enrollment_id = self.next_id()
        user = self.users[user_id]
        enrollment = {
            "id": enrollment_id,
            "course_id": course_id,
            "course_section_id": course_id * 10,
            "user_id": user_id,
            "type": type_,
            "role": type_,
            "role_id": 3,
            "enrollment_state": state,
            "created_at": now_iso(),
            "updated_at": now_iso(),
            "start_at": None,
            "end_at": None,
            "last_activity_at": None,
            "total_activity_time": 0,
            "html_url": f"/courses/{course_id}/users/{user_id}",
            "sis_user_id": user["sis_user_id"],
            "grades": {
                "html_url": "",
                "current_score": None,
                "current_grade": None,
                "final_score": None,
                "final_grade": None,
            },
            "user": {k: user[k] for k in ("id", "name", "sortable_name", "short_name")},
        }
        self.enrollments[enrollment_id] = enrollment
        return enrollment

    def add_assignment(self, course_id: int, name: str, *, points_possible: float = 10.0) -> dict[str, Any]:
        """Create a published assignment."""
        assignment_id = self.next_id()
        assignment = {
            "id": assignment_id,
            "name": name,
            "description": "",
            "course_id": course_id,
            "due_at": None,
            "lock_at": None,
            "unlock_at": None,
            "points_possible": points_possible,
            "grading_type": "points",
            "submission_types": ["online_text_entry"],
            "assignment_group_id": 1,
            "position": 1,
            "published": True,
            "html_url": f"/courses/{course_id}/assignments/{assignment_id}",
            "created_at": now_iso(),
            "updated_at": now_iso(),
        }
        self.assignments[assignment_id] = assignment
        return assignment

    def add_submission(
        self,
        assignment_id: int,
        user_id: int,
        *,
        submitted_at: str,
        score: float | None = None,
        workflow_state: str = "submitted",
    ) -> dict[str, Any]:
        """Record a submission (graded when a score is given)."""
        submission_id = self.next_id()
        graded = score is not None
        submission = {
            "id": submission_id,
            "assignment_id": assignment_id,
            "user_id": user_id,
            "attempt": 1,
            "body": None,
            "grade": None if score is None else str(score),
            "score": score,
            "submitted_at": submitted_at,
            "graded_at": submitted_at if graded else None,
            "grader_id": None,
            "workflow_state": "graded" if graded else workflow_state,
            "late": False,
            "missing": False,
            "excused": False,
            "submission_type": "online_text_entry",
            "course_id": self.assignments[assignment_id]["course_id"],
        }
        self.submissions[submission_id] = submission
        return submission
