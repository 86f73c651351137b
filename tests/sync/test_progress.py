"""Progress per learner and resource counted per course: the pure derivation and the idempotent write."""

import sqlite3

import pytest

from appliance.core.clock import FakeClock
from appliance.db import open_database
from appliance.sync.progress import MILESTONE_TYPE, CourseMilestone, ResourceProgress, count_per_course, per_course

R1, R2, R3, OUTSIDE = "ch:1", "ch:2", "ch:3", "ch:9"


def rp(user: int, resource: str, time: int, progress: float | None, completed: str | None = None) -> ResourceProgress:
    return ResourceProgress(user, resource, time, progress, completed, "2026-12-01T10:00:00.000Z")


def test_only_assigned_resources_of_enrolled_courses_count():
    progress = [
        rp(1, R1, 300, 1.0, "2026-12-01T09:00:00.000Z"),
        rp(1, R2, 40, 0.25),
        rp(1, OUTSIDE, 999, 1.0),  # done outside any lesson: no course counts it
        rp(2, R1, 7, 1.0),  # progress 1 without a completion time is done too
        rp(3, R1, 50, 0.5),  # not enrolled in course 10
    ]
    assigned = {10: {R1, R2, R3}, 20: {R2}}
    enrolled = [(1, 10), (1, 20), (2, 10), (2, 20), (4, 10)]
    milestones, totals = per_course(progress, assigned, enrolled)
    assert milestones == [
        CourseMilestone(1, 10, f"{R1}#1", True, 1.0, "2026-12-01T09:00:00.000Z"),
        CourseMilestone(1, 10, f"{R2}#1", False, 0.25, "2026-12-01T10:00:00.000Z"),
        CourseMilestone(1, 20, f"{R2}#1", False, 0.25, "2026-12-01T10:00:00.000Z"),
        CourseMilestone(2, 10, f"{R1}#2", True, 1.0, "2026-12-01T10:00:00.000Z"),
    ]
    # A resource shared by two courses counts in each (each course's own total), never twice in one.
    assert totals == {(1, 10): 340, (1, 20): 40, (2, 10): 7}


def test_nothing_started_or_nothing_assigned_counts_nothing():
    assert per_course([], {10: {R1}}, [(1, 10)]) == ([], {})
    assert per_course([rp(1, R1, 5, 0.1)], {}, [(1, 10)]) == ([], {})
    assert per_course([rp(1, R1, 5, 0.1)], {10: {R1}}, []) == ([], {})


@pytest.fixture
async def db(config_factory):
    async with open_database(config_factory()) as database:
        await database.execute("INSERT INTO facilities (id, name) VALUES (1, 'F')")
        await database.execute(
            "INSERT INTO providers (id, type, name, base_url, credentials) VALUES (1, 'kolibri', 'K', 'http://k', 'x')"
        )
        for uid in (1, 2):
            await database.execute(
                "INSERT INTO users (id, uuid, username, username_key, facility_id, role)"
                " VALUES (?, ?, ?, ?, 1, 'learner')",
                (uid, f"uuid-{uid}", f"u{uid}", f"u{uid}"),
            )
        await database.execute("INSERT INTO courses (id, provider_id, external_id, name) VALUES (10, 1, 'c10', 'C')")
        for uid in (1, 2):
            await database.execute("INSERT INTO enrollments (user_id, course_id) VALUES (?, 10)", (uid,))
        await database.executemany(
            "INSERT INTO course_resources (course_id, external_id) VALUES (10, ?)", [(R1,), (R2,), (R3,)]
        )
        yield database


async def put_progress(db, user: int, resource: str, time: int, progress: float, completed: str | None = None):
    await db.execute(
        "INSERT INTO learner_progress (provider_id, user_id, external_id, total_time, progress, completed_at,"
        " occurred_at) VALUES (1, ?, ?, ?, ?, ?, '2026-12-01T10:00:00.000Z') ON CONFLICT (provider_id, user_id,"
        " external_id) DO UPDATE SET total_time = excluded.total_time, progress = excluded.progress,"
        " completed_at = excluded.completed_at",
        (user, resource, time, progress, completed),
    )


async def state(db) -> tuple[list[tuple], list[tuple]]:
    milestones = [tuple(r) for r in await db.fetchall(
        "SELECT user_id, external_id, is_completed, score FROM milestones WHERE type = ? ORDER BY id",
        (MILESTONE_TYPE,))]
    activities = [tuple(r) for r in await db.fetchall(
        "SELECT user_id, course_id, total_time, time_delta FROM activities ORDER BY id")]
    return milestones, activities


async def test_repeated_counting_adds_nothing_and_changes_are_recorded_once(db):
    clock = FakeClock()
    await put_progress(db, 1, R1, 300, 1.0, "2026-12-01T09:00:00.000Z")
    await put_progress(db, 1, R2, 40, 0.25)
    await put_progress(db, 1, OUTSIDE, 500, 1.0)
    assert await count_per_course(db, clock, 1) == (2, 1)
    first = await state(db)
    assert first == ([(1, f"{R1}#1", 1, 1.0), (1, f"{R2}#1", 0, 0.25)], [(1, 10, 340, 340)])
    for _ in range(3):  # a re-pull with nothing new (or a run redone after a crash) writes nothing
        assert await count_per_course(db, clock, 1) == (0, 0)
    assert await state(db) == first

    await put_progress(db, 1, R2, 95, 1.0, "2026-12-01T11:00:00.000Z")
    await put_progress(db, 2, R3, 12, 0.5)
    assert await count_per_course(db, clock, 1) == (2, 2)
    milestones, activities = await state(db)
    assert milestones == [(1, f"{R1}#1", 1, 1.0), (1, f"{R2}#1", 1, 1.0), (2, f"{R3}#2", 0, 0.5)]
    assert activities == [(1, 10, 340, 340), (1, 10, 395, 55), (2, 10, 12, 12)]
    done = await db.fetchval(
        "SELECT COUNT(*) FROM milestones WHERE user_id = 1 AND course_id = 10 AND is_completed = 1")
    assert done == 2


async def test_a_resource_leaving_the_course_or_a_learner_leaving_removes_their_milestones(db):
    clock = FakeClock()
    await put_progress(db, 1, R1, 30, 1.0)
    await put_progress(db, 2, R2, 10, 0.5)
    await count_per_course(db, clock, 1)
    await db.execute("DELETE FROM course_resources WHERE external_id = ?", (R2,))
    await db.execute("DELETE FROM enrollments WHERE user_id = 1")
    assert await count_per_course(db, clock, 1) == (2, 2)
    milestones, activities = await state(db)
    assert milestones == []
    # What they spent no longer counts in the course: the total drops to 0 once, then stays.
    assert activities == [(1, 10, 30, 30), (2, 10, 10, 10), (1, 10, 0, 0), (2, 10, 0, 0)]
    assert await count_per_course(db, clock, 1) == (0, 0)


async def test_the_new_milestone_type_is_allowed_and_others_still_refused(db):
    await db.execute("INSERT INTO milestones (user_id, course_id, external_id, type) VALUES (1, 10, 'x', ?)",
                     (MILESTONE_TYPE,))
    with pytest.raises(sqlite3.IntegrityError):
        await db.execute("INSERT INTO milestones (user_id, course_id, external_id, type) VALUES (1, 10, 'y', 'nope')")
