-- A download the egress proxy refused (internal address or odd port) gets its own failure kind instead of
-- borrowing `unsupported`: operators filter attempts by kind, and "refused" is a policy decision, not a
-- yt-dlp limitation. SQLite cannot alter a CHECK constraint, so the table is rebuilt.
CREATE TABLE video_download_attempts_new (
    id INTEGER PRIMARY KEY,
    video_id INTEGER NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('running', 'succeeded', 'failed', 'waiting')),
    failure_kind TEXT CHECK (failure_kind IS NULL OR failure_kind IN
        ('unreachable', 'timeout', 'not_found', 'unsupported', 'not_a_video', 'no_space', 'storage', 'failed',
         'refused')),
    error TEXT,
    started_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at TEXT
);
INSERT INTO video_download_attempts_new (id, video_id, attempt, outcome, failure_kind, error, started_at, finished_at)
    SELECT id, video_id, attempt, outcome,
           CASE WHEN failure_kind = 'unsupported' AND error LIKE 'refused:%' THEN 'refused' ELSE failure_kind END,
           error, started_at, finished_at
    FROM video_download_attempts;
DROP TABLE video_download_attempts;
ALTER TABLE video_download_attempts_new RENAME TO video_download_attempts;
CREATE INDEX video_download_attempts_video ON video_download_attempts(video_id, id);
