-- Sessions of the built-in dashboard (an admin signed in with the admin token or an admin
-- key) and of the customer portal (one user), kept in the store so that every node knows
-- them; and the one-time links that open a portal session. Only SHA-256 hashes of the
-- cookie and link tokens are stored.
CREATE TABLE web_sessions (
    token_hash    TEXT PRIMARY KEY NOT NULL,   -- SHA-256 (hex) of the session cookie's token
    kind          TEXT NOT NULL CHECK (kind IN ('admin', 'portal')),
    admin_key_id  TEXT,                        -- admin: the admin key signed in with (NULL: the admin token)
    user_id       TEXT,                        -- portal: the user
    admin_token_hash TEXT,                     -- admin token sessions: SHA-256 of the token signed in with (a new token ends them)
    csrf_token    TEXT NOT NULL,               -- every form of the session carries it
    idle_seconds  BIGINT NOT NULL,             -- the session ends after this long without a request
    created_at    TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    expires_at    TEXT NOT NULL                -- the latest it can last, however active
);
CREATE INDEX web_sessions_by_user ON web_sessions (user_id);

CREATE TABLE portal_links (
    token_hash  TEXT PRIMARY KEY NOT NULL,     -- SHA-256 (hex) of the link's one-time token
    user_id     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT                           -- set by the one use the link has
);
CREATE INDEX portal_links_by_user ON portal_links (user_id);
