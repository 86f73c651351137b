"""Neutral records every connector pulls into: users, courses, enrollments, milestones and activity.

Shaped for Canvas, Kolibri, Brightspace and Moodle alike (see the LMS contracts): a Kolibri classroom, a
Brightspace org unit and a Moodle course are all a `CourseRecord`; Kolibri's content summary logs, Moodle's
completions and Brightspace's grades become milestones and activity. Ids are always text, whatever the
upstream sends, so that a number sent as a string on one page and as a number on the next is one id.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExternalUser:
    """A user as the upstream knows it; `sis_id` is where the appliance's uuid lives when we created it."""

    external_id: str
    sis_id: str | None
    login_id: str | None
    name: str
    first_name: str
    last_name: str
    email: str | None


@dataclass(frozen=True)
class CourseRecord:
    """A course (Canvas course, Kolibri classroom, Brightspace course offering, Moodle course)."""

    external_id: str
    name: str
    code: str
    state: str
    start_at: str | None
    end_at: str | None
    external_url: str


@dataclass(frozen=True)
class EnrollmentRecord:
    """An upstream enrollment of a user in a course; state is one of active, completed, dropped."""

    external_id: str
    course_external_id: str
    user_external_id: str
    state: str
    total_activity_time: int
    current_score: float | None


@dataclass(frozen=True)
class MilestoneRecord:
    """A submission, completion or grade: one milestone row."""

    external_id: str
    course_external_id: str
    user_external_id: str
    type: str
    is_completed: bool
    score: float | None
    occurred_at: str | None


@dataclass(frozen=True)
class ActivityRecord:
    """Time a learner spent on a course's material, as the upstream last reported it (totals, not deltas).

    `course_external_id` may be empty where the upstream tracks progress per learner only (Kolibri's
    content logs outside a classroom); `progress` is 0..1 when known.
    """

    external_id: str
    course_external_id: str
    user_external_id: str
    total_time_s: int
    progress: float | None
    completed_at: str | None
    occurred_at: str | None
    page_views: int | None = None
