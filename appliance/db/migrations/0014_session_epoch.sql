-- A count of every change a signed-in principal depends on, kept by triggers: a session ending (its state),
-- a user's role, facility, name, forced password change or deactivation, a user deleted, a department
-- admin's facilities. Each HTTP process re-checks the sessions it serves every second; while this count
-- has not moved it re-reads none of them (2,000 readers meant 2,000 rows a second per process), only
-- those its cached times say have expired. last_seen_at deliberately does not count (the app origin
-- writes it when a session is used): a touch only ever extends a session, and an
-- expiry computed from an older value is read again before it is believed.
CREATE TABLE session_epoch (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n INTEGER NOT NULL
);
INSERT INTO session_epoch (id, n) VALUES (1, 0);

CREATE TRIGGER session_epoch_session_ended AFTER UPDATE OF state, expires_at, user_id ON sessions
BEGIN UPDATE session_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER session_epoch_session_deleted AFTER DELETE ON sessions WHEN old.state = 'active'
BEGIN UPDATE session_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER session_epoch_user_changed
AFTER UPDATE OF role, facility_id, username, uuid, must_change_password, deactivated_at ON users
BEGIN UPDATE session_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER session_epoch_user_deleted AFTER DELETE ON users
BEGIN UPDATE session_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER session_epoch_facilities_added AFTER INSERT ON user_facilities
BEGIN UPDATE session_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER session_epoch_facilities_removed AFTER DELETE ON user_facilities
BEGIN UPDATE session_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER session_epoch_facilities_changed AFTER UPDATE ON user_facilities
BEGIN UPDATE session_epoch SET n = n + 1 WHERE id = 1; END;
