-- The language a person chose for the pages (NULL: follow the browser's Accept-Language).
ALTER TABLE users ADD COLUMN locale TEXT CHECK (locale IS NULL OR length(locale) BETWEEN 2 AND 8);
