-- Video cache: cached and uploaded videos, their download attempts, per-facility
-- visibility, learners' resume positions and daily watch time.

CREATE TABLE videos (
    id INTEGER PRIMARY KEY,
    source_kind TEXT NOT NULL CHECK (source_kind IN ('download', 'upload')),
    source_url TEXT,
    extractor TEXT,
    external_id TEXT,
    title TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    channel TEXT NOT NULL DEFAULT '',
    duration_s REAL,
    width INTEGER,
    height INTEGER,
    format TEXT,
    size_bytes INTEGER,
    etag TEXT,
    storage_key TEXT,
    thumbnail_key TEXT,
    original_filename TEXT,
    availability TEXT NOT NULL DEFAULT 'pending'
        CHECK (availability IN ('pending', 'processing', 'available', 'error')),
    attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error TEXT,
    next_attempt_at TEXT,
    queued_at TEXT,  -- when a job was last published; NULL = the daemon must queue it (e.g. `video add`)
    added_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    available_at TEXT,
    CHECK ((source_kind = 'download') = (source_url IS NOT NULL))
);
-- A URL already cached is never fetched twice, nor the same video reached through another URL.
CREATE UNIQUE INDEX videos_source_url ON videos(source_url) WHERE source_url IS NOT NULL;
CREATE UNIQUE INDEX videos_external ON videos(extractor, external_id)
    WHERE extractor IS NOT NULL AND external_id IS NOT NULL;
CREATE INDEX videos_availability ON videos(availability, id);

CREATE TABLE video_download_attempts (
    id INTEGER PRIMARY KEY,
    video_id INTEGER NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('running', 'succeeded', 'failed', 'waiting')),
    failure_kind TEXT CHECK (failure_kind IS NULL OR failure_kind IN
        ('unreachable', 'timeout', 'not_found', 'unsupported', 'not_a_video', 'no_space', 'storage', 'failed')),
    error TEXT,
    started_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at TEXT
);
CREATE INDEX video_download_attempts_video ON video_download_attempts(video_id, id);

-- Hidden until made visible, as libraries are.
CREATE TABLE video_facilities (
    video_id INTEGER NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
    facility_id INTEGER NOT NULL REFERENCES facilities(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (video_id, facility_id)
);
CREATE INDEX video_facilities_facility ON video_facilities(facility_id, video_id);

CREATE TABLE video_positions (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    video_id INTEGER NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
    position_s REAL NOT NULL CHECK (position_s >= 0),
    completed INTEGER NOT NULL DEFAULT 0 CHECK (completed IN (0, 1)),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (user_id, video_id)
);

-- Learner activity: seconds watched per learner, video and UTC day.
CREATE TABLE video_watch_activity (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    video_id INTEGER NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
    facility_id INTEGER NOT NULL REFERENCES facilities(id) ON DELETE CASCADE,
    day TEXT NOT NULL,
    seconds REAL NOT NULL DEFAULT 0 CHECK (seconds >= 0),
    first_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    last_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (user_id, video_id, day)
);
CREATE INDEX video_watch_activity_facility ON video_watch_activity(facility_id, day);
