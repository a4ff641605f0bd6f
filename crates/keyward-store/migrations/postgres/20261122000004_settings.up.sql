-- Settings the server keeps in the database, such as the SHA-256 of the generated admin
-- token (never the token itself).
CREATE TABLE settings (
    name        TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    value       TEXT NOT NULL,
    updated_at  TEXT COLLATE "C" NOT NULL
);
