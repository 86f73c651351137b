-- Resources a course assigns (Kolibri: the resources of a classroom's active lessons), so that progress the
-- upstream reports per learner and resource (learner_progress) can be counted per course: a milestone per
-- started resource and a running total of time spent. Replaced whole per course on every pull.
CREATE TABLE course_resources (
    course_id INTEGER NOT NULL REFERENCES courses(id) ON DELETE CASCADE,
    external_id TEXT NOT NULL,                -- as learner_progress.external_id (Kolibri: channel:content)
    PRIMARY KEY (course_id, external_id)
);
CREATE INDEX course_resources_resource ON course_resources(external_id);

-- Milestones gain the type 'resource_completion' (a learner's progress on one assigned resource); SQLite
-- cannot alter a CHECK constraint, so the table is rebuilt with the same rows and ids.
CREATE TABLE milestones_new (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    course_id INTEGER NOT NULL REFERENCES courses(id) ON DELETE CASCADE,
    external_id TEXT NOT NULL,
    type TEXT NOT NULL CHECK (type IN ('enrollment', 'quiz_submission', 'assignment_submission',
                                       'grade_received', 'discussion_post', 'resource_completion')),
    is_completed INTEGER NOT NULL DEFAULT 0 CHECK (is_completed IN (0, 1)),
    score REAL,
    occurred_at TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (course_id, external_id, type)
);
INSERT INTO milestones_new (id, user_id, course_id, external_id, type, is_completed, score, occurred_at, created_at)
    SELECT id, user_id, course_id, external_id, type, is_completed, score, occurred_at, created_at FROM milestones;
DROP TABLE milestones;
ALTER TABLE milestones_new RENAME TO milestones;
CREATE INDEX milestones_user ON milestones(user_id, course_id);
