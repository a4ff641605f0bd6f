-- The audit log of CONTRACT §9: every management action, never key material.
CREATE TABLE audit_log (
    id        TEXT COLLATE "C" PRIMARY KEY NOT NULL,     -- 'aud_' + ULID
    at        TEXT COLLATE "C" NOT NULL,
    actor     TEXT NOT NULL,                 -- 'admin', 'cli' or 'key:<key id>'
    action    TEXT NOT NULL,
    user_id   TEXT COLLATE "C",
    key_id    TEXT COLLATE "C",
    ip        TEXT,
    details   TEXT NOT NULL DEFAULT '{}'     -- JSON
);
CREATE INDEX audit_log_by_at ON audit_log (at DESC, id DESC);
CREATE INDEX audit_log_by_user ON audit_log (user_id, at DESC, id DESC);
CREATE INDEX audit_log_by_key ON audit_log (key_id, at DESC, id DESC);
CREATE INDEX audit_log_by_action ON audit_log (action, at DESC, id DESC);
