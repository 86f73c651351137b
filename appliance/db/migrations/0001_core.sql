-- Core schema: facilities, users, the transactional outbox and instance settings.
-- Timestamps are ISO-8601 UTC text so that they sort and read the same everywhere.

CREATE TABLE facilities (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    timezone TEXT NOT NULL DEFAULT 'UTC',
    anonymous_browsing INTEGER NOT NULL DEFAULT 0 CHECK (anonymous_browsing IN (0, 1)),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    username TEXT NOT NULL,
    username_key TEXT NOT NULL UNIQUE,
    first_name TEXT NOT NULL DEFAULT '',
    last_name TEXT NOT NULL DEFAULT '',
    email TEXT,
    doc_id TEXT,
    facility_id INTEGER NOT NULL REFERENCES facilities(id),
    role TEXT NOT NULL CHECK (role IN ('learner', 'facility_admin', 'department_admin', 'system_admin')),
    password_hash TEXT,
    must_change_password INTEGER NOT NULL DEFAULT 0 CHECK (must_change_password IN (0, 1)),
    auth_source TEXT NOT NULL DEFAULT 'local' CHECK (auth_source IN ('local', 'ldap', 'saml')),
    deactivated_at TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX users_facility ON users(facility_id);
CREATE INDEX users_doc_id ON users(doc_id);

-- Extra facilities a department admin may act on (its home facility is users.facility_id).
CREATE TABLE user_facilities (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    facility_id INTEGER NOT NULL REFERENCES facilities(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, facility_id)
);

-- The transactional outbox: a domain change and its outbox row commit together, then a relay
-- publishes the row to JetStream with Nats-Msg-Id = id, so nothing is lost between the two.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    aggregate_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    published_at TEXT
);
CREATE INDEX outbox_unpublished ON outbox(id) WHERE published_at IS NULL;

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
