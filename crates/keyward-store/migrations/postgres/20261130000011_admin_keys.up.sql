-- Admin keys: credentials for the management API with a set of permissions, besides the
-- admin token. Only the SHA-256 of a key is kept; it is looked up on every call, so a
-- revocation holds on every node at once.
CREATE TABLE admin_keys (
    id            TEXT COLLATE "C" PRIMARY KEY,          -- 'adk_' + ULID
    name          TEXT NOT NULL,
    key_hash      TEXT COLLATE "C" NOT NULL UNIQUE,      -- hex SHA-256 of the key
    key_prefix    TEXT NOT NULL,                         -- 'kwadm_' and 4 characters
    permissions   TEXT NOT NULL,                         -- JSON array of permission names
    created_at    TEXT COLLATE "C" NOT NULL,
    expires_at    TEXT COLLATE "C",
    last_used_at  TEXT COLLATE "C",
    revoked_at    TEXT COLLATE "C"
);
CREATE INDEX admin_keys_by_created ON admin_keys (created_at DESC, id DESC);
