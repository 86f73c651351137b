-- Provider types are validated in code against the connector registry (the `appliance.connectors` entry
-- points), so a connector installed as a plugin can be stored: the CHECK listing five types goes.
-- SQLite cannot drop a CHECK in place: the table is rebuilt (the migrator runs with foreign_keys off, so
-- dropping the old table cascades nothing; the children's REFERENCES name the table, which is back after
-- the rename).

CREATE TABLE providers_new (
    id INTEGER PRIMARY KEY,
    type TEXT NOT NULL CHECK (length(type) BETWEEN 1 AND 64),
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

INSERT INTO providers_new (id, type, name, base_url, account_id, credentials, facility_id, state, push_roster,
    runtime_state, retry_until, uplink, last_error, outbox_floor, last_pull_at, last_push_at, created_at,
    updated_at)
SELECT id, type, name, base_url, account_id, credentials, facility_id, state, push_roster, runtime_state,
    retry_until, uplink, last_error, outbox_floor, last_pull_at, last_push_at, created_at, updated_at
FROM providers;

DROP TABLE providers;

ALTER TABLE providers_new RENAME TO providers;
