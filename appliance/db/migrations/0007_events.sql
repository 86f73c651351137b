-- Domain events and Standard Webhooks deliveries.
-- `events` is the events' transactional outbox: a change and its event commit together; the events
-- feature relays unpublished rows to JetStream (Nats-Msg-Id = id) and fans them out to webhooks.
-- AUTOINCREMENT: a seq is never reused after old events are pruned (the fan-out keeps a position).
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    published_at TEXT
);
CREATE INDEX events_unpublished ON events(seq) WHERE published_at IS NULL;
CREATE INDEX events_created ON events(created_at);

CREATE TABLE webhooks (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    events TEXT NOT NULL DEFAULT '["*"]',     -- JSON list of event types, or ["*"]
    headers TEXT NOT NULL DEFAULT '{}',       -- JSON object of extra, non-reserved request headers
    enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    secret TEXT NOT NULL,                     -- AES-GCM ciphertext of the whsec_ secret(s)
    secret_rotated_at TEXT,
    previous_secret_until TEXT,               -- the previous secret also signs until then
    failure_count INTEGER NOT NULL DEFAULT 0, -- consecutive failed attempts
    failing_since TEXT,
    disabled_reason TEXT,
    last_success_at TEXT,
    last_failure_at TEXT,
    created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- One row per (webhook, event): pending until delivered (2xx), or failed once the retry window ends.
CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY,
    webhook_id INTEGER NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_seq INTEGER NOT NULL REFERENCES events(seq) ON DELETE CASCADE,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'succeeded', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at TEXT,
    UNIQUE (webhook_id, event_seq)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(webhook_id, next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries(webhook_id, id);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries(event_seq);

-- The delivery log: one row per HTTP attempt.
CREATE TABLE webhook_attempts (
    id INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    status_code INTEGER,
    ok INTEGER NOT NULL CHECK (ok IN (0, 1)),
    latency_ms INTEGER NOT NULL,
    error TEXT,
    response_excerpt TEXT,
    at TEXT NOT NULL
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts(delivery_id, attempt);
