-- Progress per learner and learning resource, as the upstream last reported it (totals, not deltas):
-- where `activities` is a time series per learner and course, this holds what upstreams such as Kolibri
-- report per resource, often outside any course (course_id NULL). One row per (provider, learner, resource).
CREATE TABLE learner_progress (
    id INTEGER PRIMARY KEY,
    provider_id INTEGER NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    course_id INTEGER REFERENCES courses(id) ON DELETE SET NULL,
    external_id TEXT NOT NULL,                -- the upstream's id of the resource (Kolibri: channel:content)
    total_time INTEGER NOT NULL DEFAULT 0 CHECK (total_time >= 0),
    progress REAL CHECK (progress IS NULL OR (progress >= 0 AND progress <= 1)),
    completed_at TEXT,
    occurred_at TEXT,                         -- the upstream's time of the last interaction
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (provider_id, user_id, external_id)
);
CREATE INDEX learner_progress_user ON learner_progress(user_id, provider_id);
