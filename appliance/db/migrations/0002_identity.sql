-- Identity: server-side sessions, API tokens, the audit log, sign-in failures and lockouts, SAML state.
-- Secrets (session ids, API tokens) are stored only as SHA-256 hashes: a stolen backup opens nothing.

CREATE TABLE sessions (
    id INTEGER PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    client_addr TEXT NOT NULL DEFAULT '',
    user_agent TEXT NOT NULL DEFAULT '',
    auth_method TEXT NOT NULL CHECK (auth_method IN ('password', 'ldap', 'saml')),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    last_seen_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    expires_at TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'active'
        CHECK (state IN ('active', 'logged_out', 'revoked', 'rotated', 'expired', 'deactivated', 'password_changed')),
    ended_at TEXT
);
CREATE INDEX sessions_user ON sessions(user_id, state);
CREATE INDEX sessions_active ON sessions(state, expires_at);

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    name TEXT NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('learner', 'facility_admin', 'department_admin', 'system_admin')),
    created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    expires_at TEXT,
    last_used_at TEXT,
    state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'revoked')),
    revoked_at TEXT
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    action TEXT NOT NULL CHECK (action IN (
        'user_created', 'user_updated', 'password_set', 'password_reset', 'role_changed', 'facility_changed',
        'user_deactivated', 'user_reactivated', 'sign_in_succeeded', 'sign_in_failed', 'signed_out',
        'session_revoked', 'account_locked', 'token_created', 'token_revoked', 'facility_created', 'facility_updated',
        'roster_imported')),
    actor_user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    actor_username TEXT NOT NULL DEFAULT '',
    target_user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    target_username TEXT NOT NULL DEFAULT '',
    facility_id INTEGER,
    client_addr TEXT NOT NULL DEFAULT '',
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log(at);
CREATE INDEX audit_log_action ON audit_log(action, at);
CREATE INDEX audit_log_target ON audit_log(target_user_id, at);
CREATE INDEX audit_log_facility ON audit_log(facility_id, at);

-- One row per failed sign-in; counted per username key and per client address within the window.
CREATE TABLE login_failures (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('username', 'address')),
    subject TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX login_failures_subject ON login_failures(kind, subject, at);

CREATE TABLE lockouts (
    kind TEXT NOT NULL CHECK (kind IN ('username', 'address')),
    subject TEXT NOT NULL,
    locked_until TEXT NOT NULL,
    PRIMARY KEY (kind, subject)
);

-- AuthnRequests sent to the IdP and not yet answered (any worker may receive the answer);
-- browser_hash binds each to the browser that started it (SHA-256 of its binding cookie).
CREATE TABLE saml_requests (
    request_id TEXT PRIMARY KEY,
    relay_state TEXT NOT NULL DEFAULT '/',
    browser_hash TEXT NOT NULL DEFAULT '',
    expires_at TEXT NOT NULL
);

-- Assertion ids already used, kept until the assertion would have expired anyway.
CREATE TABLE saml_assertions (
    assertion_id TEXT PRIMARY KEY,
    expires_at TEXT NOT NULL
);
