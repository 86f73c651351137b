-- Knowledge library: ZIM libraries, facility visibility, featured, favourites, block lists,
-- article views, reading time and imports. Every change that the HTTP workers cache bumps
-- library_generation through triggers, so workers notice it with one cheap read.

CREATE TABLE libraries (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    slug TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL CHECK (state IN ('ready', 'error', 'missing')),
    error TEXT,
    name TEXT NOT NULL DEFAULT '',
    title TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    language TEXT NOT NULL DEFAULT '',
    creator TEXT NOT NULL DEFAULT '',
    publisher TEXT NOT NULL DEFAULT '',
    date TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL DEFAULT '',
    category TEXT NOT NULL DEFAULT '',
    flavour TEXT NOT NULL DEFAULT '',
    article_count INTEGER NOT NULL DEFAULT 0,
    media_count INTEGER NOT NULL DEFAULT 0,
    size INTEGER NOT NULL DEFAULT 0,
    mtime_ns INTEGER NOT NULL DEFAULT 0,
    has_fulltext_index INTEGER NOT NULL DEFAULT 0 CHECK (has_fulltext_index IN (0, 1)),
    has_main_page INTEGER NOT NULL DEFAULT 0 CHECK (has_main_page IN (0, 1)),
    illustration BLOB,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX libraries_state ON libraries(state);

-- Hidden until an admin makes a library visible to a facility (UnlockEdv2 semantics).
CREATE TABLE library_visibility (
    library_id INTEGER NOT NULL REFERENCES libraries(id) ON DELETE CASCADE,
    facility_id INTEGER NOT NULL REFERENCES facilities(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (library_id, facility_id)
);
CREATE INDEX library_visibility_facility ON library_visibility(facility_id);

CREATE TABLE library_featured (
    library_id INTEGER NOT NULL REFERENCES libraries(id) ON DELETE CASCADE,
    facility_id INTEGER NOT NULL REFERENCES facilities(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (library_id, facility_id)
);

CREATE TABLE library_favorites (
    library_id INTEGER NOT NULL REFERENCES libraries(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (library_id, user_id)
);

CREATE TABLE library_blocklist (
    library_id INTEGER NOT NULL REFERENCES libraries(id) ON DELETE CASCADE,
    pattern TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (library_id, pattern)
);

-- Who changed visibility, featuring or a block list, and what it was before and after.
CREATE TABLE library_audit (
    id INTEGER PRIMARY KEY,
    library_id INTEGER NOT NULL REFERENCES libraries(id) ON DELETE CASCADE,
    actor_user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    action TEXT NOT NULL CHECK (action IN ('visibility', 'featured', 'blocklist')),
    details TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX library_audit_library ON library_audit(library_id, id);

-- One row per article page served (user NULL when browsing anonymously); written in batches.
CREATE TABLE article_views (
    id INTEGER PRIMARY KEY,
    user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    facility_id INTEGER REFERENCES facilities(id) ON DELETE SET NULL,
    library_id INTEGER NOT NULL REFERENCES libraries(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    viewed_at TEXT NOT NULL
);
CREATE INDEX article_views_time ON article_views(viewed_at);
CREATE INDEX article_views_library ON article_views(library_id, path);
CREATE INDEX article_views_user ON article_views(user_id, viewed_at);

-- Seconds of visible reading reported by the page beacon, summed per user, library, path and day.
CREATE TABLE reading_time (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    facility_id INTEGER REFERENCES facilities(id) ON DELETE SET NULL,
    library_id INTEGER NOT NULL REFERENCES libraries(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    day TEXT NOT NULL,
    seconds INTEGER NOT NULL DEFAULT 0 CHECK (seconds >= 0),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (user_id, library_id, path, day)
);
CREATE INDEX reading_time_day ON reading_time(day);

CREATE TABLE library_imports (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL,
    file_name TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'downloading', 'verifying', 'done', 'failed')),
    bytes_done INTEGER NOT NULL DEFAULT 0,
    bytes_total INTEGER,
    checksum_algo TEXT CHECK (checksum_algo IN ('sha256', 'md5')),
    checksum TEXT,
    error TEXT,
    library_id INTEGER REFERENCES libraries(id) ON DELETE SET NULL,
    requested_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX library_imports_state ON library_imports(state);

CREATE TABLE library_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT INTO library_generation (id, generation) VALUES (1, 0);

CREATE TRIGGER libraries_gen_i AFTER INSERT ON libraries
BEGIN UPDATE library_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER libraries_gen_u AFTER UPDATE ON libraries
BEGIN UPDATE library_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER libraries_gen_d AFTER DELETE ON libraries
BEGIN UPDATE library_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER library_visibility_gen_i AFTER INSERT ON library_visibility
BEGIN UPDATE library_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER library_visibility_gen_d AFTER DELETE ON library_visibility
BEGIN UPDATE library_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER library_blocklist_gen_i AFTER INSERT ON library_blocklist
BEGIN UPDATE library_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER library_blocklist_gen_d AFTER DELETE ON library_blocklist
BEGIN UPDATE library_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER facilities_gen_u AFTER UPDATE OF anonymous_browsing ON facilities
BEGIN UPDATE library_generation SET generation = generation + 1 WHERE id = 1; END;
