-- The language a person chose for the pages (NULL: follow the browser's Accept-Language).
ALTER TABLE users ADD COLUMN locale TEXT CHECK (locale IS NULL OR length(locale) BETWEEN 2 AND 8);

-- Helpful links staff curate for learners (the seed platform's "helpful links" open-content provider).
-- The icon is an image staff upload, kept here and served by the appliance: never fetched from a site.
CREATE TABLE helpful_links (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description TEXT NOT NULL DEFAULT '' CHECK (length(description) <= 1000),
    url TEXT NOT NULL CHECK (length(url) BETWEEN 1 AND 2000),
    icon BLOB CHECK (icon IS NULL OR length(icon) <= 65536),
    icon_type TEXT CHECK (icon_type IS NULL OR icon_type IN ('image/png', 'image/jpeg', 'image/gif', 'image/webp')),
    position INTEGER NOT NULL DEFAULT 0,
    created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- Facilities that see a link (none: hidden from learners), like libraries and videos.
CREATE TABLE helpful_link_facilities (
    link_id INTEGER NOT NULL REFERENCES helpful_links(id) ON DELETE CASCADE,
    facility_id INTEGER NOT NULL REFERENCES facilities(id) ON DELETE CASCADE,
    PRIMARY KEY (link_id, facility_id)
);
CREATE INDEX helpful_link_facilities_facility ON helpful_link_facilities(facility_id, link_id);

-- A learner's favourite videos (libraries have library_favorites already).
CREATE TABLE video_favorites (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    video_id INTEGER NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (user_id, video_id)
);
CREATE INDEX video_favorites_video ON video_favorites(video_id);
