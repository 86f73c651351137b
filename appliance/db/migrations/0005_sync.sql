-- Store-and-forward sync: LMS providers, what we pull from them (after UnlockEdv2's model),
-- what we push to them (per-provider deliveries of outbox rows), dead letters, runs, cursors and the
-- scheduler's per-window dedupe.

CREATE TABLE providers (
    id INTEGER PRIMARY KEY,
    type TEXT NOT NULL CHECK (type IN ('canvas_oss', 'canvas_cloud', 'kolibri', 'brightspace', 'moodle')),
    name TEXT NOT NULL UNIQUE,
    base_url TEXT NOT NULL,
    account_id TEXT NOT NULL DEFAULT '',
    credentials TEXT NOT NULL,                -- AES-GCM ciphertext; the key lives outside the database
    facility_id INTEGER REFERENCES facilities(id),   -- NULL: serves every facility
    state TEXT NOT NULL DEFAULT 'enabled' CHECK (state IN ('enabled', 'disabled', 'archived')),
    push_roster INTEGER NOT NULL DEFAULT 1 CHECK (push_roster IN (0, 1)),
    runtime_state TEXT NOT NULL DEFAULT 'ready'
        CHECK (runtime_state IN ('ready', 'retrying', 'auth_failed', 'disabled')),
    retry_until TEXT,
    uplink TEXT NOT NULL DEFAULT 'unknown' CHECK (uplink IN ('unknown', 'up', 'down')),
    last_error TEXT,
    outbox_floor INTEGER NOT NULL DEFAULT 0,  -- outbox rows up to this id predate the provider
    last_pull_at TEXT,
    last_push_at TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- Upstream users, matched to local ones or waiting for an admin to link them (never merged silently).
CREATE TABLE provider_user_mappings (
    id INTEGER PRIMARY KEY,
    provider_id INTEGER NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    external_user_id TEXT NOT NULL,
    external_sis_id TEXT,
    external_login_id TEXT,
    external_name TEXT NOT NULL DEFAULT '',
    external_email TEXT,
    matched_by TEXT CHECK (matched_by IN ('pushed', 'sis_id', 'login_id', 'doc_id', 'username', 'admin')),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (provider_id, external_user_id)
);
CREATE UNIQUE INDEX provider_user_mappings_user ON provider_user_mappings(provider_id, user_id)
    WHERE user_id IS NOT NULL;

CREATE TABLE courses (
    id INTEGER PRIMARY KEY,
    provider_id INTEGER NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    external_id TEXT NOT NULL,
    name TEXT NOT NULL,
    code TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'available'
        CHECK (state IN ('unpublished', 'available', 'completed', 'deleted')),
    external_url TEXT NOT NULL DEFAULT '',
    start_at TEXT,
    end_at TEXT,
    total_milestones INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (provider_id, external_id)
);

CREATE TABLE enrollments (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    course_id INTEGER NOT NULL REFERENCES courses(id) ON DELETE CASCADE,
    external_id TEXT,
    state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'completed', 'dropped')),
    source TEXT NOT NULL DEFAULT 'local' CHECK (source IN ('local', 'upstream')),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (user_id, course_id)
);
CREATE INDEX enrollments_course ON enrollments(course_id);

CREATE TABLE milestones (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    course_id INTEGER NOT NULL REFERENCES courses(id) ON DELETE CASCADE,
    external_id TEXT NOT NULL,
    type TEXT NOT NULL CHECK (type IN ('enrollment', 'quiz_submission', 'assignment_submission',
                                       'grade_received', 'discussion_post')),
    is_completed INTEGER NOT NULL DEFAULT 0 CHECK (is_completed IN (0, 1)),
    score REAL,
    occurred_at TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (course_id, external_id, type)
);
CREATE INDEX milestones_user ON milestones(user_id, course_id);

CREATE TABLE outcomes (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    course_id INTEGER NOT NULL REFERENCES courses(id) ON DELETE CASCADE,
    type TEXT NOT NULL CHECK (type IN ('certificate', 'grade', 'progress_completion', 'pathway_completion',
                                       'college_credit')),
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (user_id, course_id, type)
);

-- Time spent: one row per observation; time_delta is the growth since the previous total.
CREATE TABLE activities (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    course_id INTEGER NOT NULL REFERENCES courses(id) ON DELETE CASCADE,
    type TEXT NOT NULL CHECK (type IN ('interaction', 'completion')),
    total_time INTEGER NOT NULL DEFAULT 0,
    time_delta INTEGER NOT NULL DEFAULT 0,
    page_views INTEGER NOT NULL DEFAULT 0,
    external_id TEXT,
    recorded_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX activities_user_course ON activities(user_id, course_id, id);

CREATE TABLE sync_cursors (
    provider_id INTEGER NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (provider_id, kind)
);

CREATE TABLE sync_runs (
    id INTEGER PRIMARY KEY,
    provider_id INTEGER NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    job TEXT NOT NULL CHECK (job IN ('pull', 'report')),
    trigger TEXT NOT NULL CHECK (trigger IN ('schedule', 'catch_up', 'manual')),
    window_id TEXT UNIQUE,
    state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
    stage TEXT NOT NULL DEFAULT '',
    counts TEXT NOT NULL DEFAULT '{}',
    errors TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    started_at TEXT,
    finished_at TEXT
);
CREATE INDEX sync_runs_provider ON sync_runs(provider_id, id);
CREATE INDEX sync_runs_queued ON sync_runs(state) WHERE state IN ('queued', 'running');

-- One row per (outbox row, provider): 'sending' is written before the first upstream call (so a
-- redelivery after a crash knows to look upstream before creating), then done/skipped/dead.
CREATE TABLE push_deliveries (
    outbox_id INTEGER NOT NULL REFERENCES outbox(id) ON DELETE CASCADE,
    provider_id INTEGER NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    state TEXT NOT NULL CHECK (state IN ('sending', 'done', 'skipped', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 1,
    external_id TEXT,
    detail TEXT,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (outbox_id, provider_id)
) WITHOUT ROWID;
CREATE INDEX push_deliveries_provider ON push_deliveries(provider_id, state);

CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY,
    provider_id INTEGER NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    outbox_id INTEGER NOT NULL REFERENCES outbox(id) ON DELETE CASCADE,
    topic TEXT NOT NULL,
    status_code INTEGER,
    error TEXT NOT NULL,
    error_body TEXT,
    state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'retrying', 'resolved')),
    retries INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (provider_id, outbox_id)
);
CREATE INDEX dead_letters_state ON dead_letters(state, provider_id);
