-- Plans, users and their plan history, API keys, and the key view of CONTRACT §2.
-- The schema has the shape of the SQLite one, so both backends run the same queries:
-- timestamps are TEXT in one fixed UTC format, 'YYYY-MM-DDTHH:MM:SS.sssZ', compared
-- byte-wise (COLLATE "C") so that text order is time order whatever the database's locale;
-- JSON columns hold JSON text; counts are BIGINT.

-- Now, in the schema's timestamp format.
CREATE FUNCTION keyward_now() RETURNS TEXT LANGUAGE SQL STABLE AS $$
    SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

CREATE TABLE plans (
    name                          TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    limits                        TEXT NOT NULL DEFAULT '[]',   -- JSON [{window_seconds, max, name?}]
    burst                         TEXT,                         -- JSON {rate_per_second, capacity}
    monthly_quota                 BIGINT,
    max_keys                      BIGINT,
    features                      TEXT,                         -- JSON [scope] or NULL (any scope)
    price_base_cents              BIGINT,
    price_included_requests       BIGINT,
    price_overage_cents_per_1000  BIGINT,
    created_at                    TEXT COLLATE "C" NOT NULL DEFAULT keyward_now(),
    updated_at                    TEXT COLLATE "C" NOT NULL DEFAULT keyward_now(),
    seq                           BIGSERIAL NOT NULL            -- creation order
);

INSERT INTO plans (name, limits, max_keys) VALUES
    ('free',       '[{"window_seconds":60,"max":60},{"window_seconds":3600,"max":1000},{"window_seconds":86400,"max":10000}]', 5),
    ('pro',        '[{"window_seconds":60,"max":600},{"window_seconds":3600,"max":20000},{"window_seconds":86400,"max":500000}]', 50),
    ('enterprise', '[{"window_seconds":60,"max":6000},{"window_seconds":3600,"max":200000},{"window_seconds":86400,"max":10000000}]', NULL);

CREATE TABLE users (
    user_id     TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    plan        TEXT COLLATE "C" NOT NULL REFERENCES plans (name),
    email       TEXT,
    company     TEXT,
    metadata    TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT COLLATE "C" NOT NULL,
    updated_at  TEXT COLLATE "C" NOT NULL,
    deleted_at  TEXT COLLATE "C"
);
CREATE INDEX users_by_created ON users (created_at DESC, user_id DESC);
CREATE INDEX users_by_plan ON users (plan, created_at DESC, user_id DESC);

-- Each row opens a billing segment: the user is on `plan` from `effective_at` until the
-- next row. The plan's price is copied as it was when the segment began.
CREATE TABLE plan_history (
    id                            BIGSERIAL PRIMARY KEY,
    user_id                       TEXT COLLATE "C" NOT NULL REFERENCES users (user_id),
    plan                          TEXT COLLATE "C" NOT NULL,
    effective_at                  TEXT COLLATE "C" NOT NULL,
    price_base_cents              BIGINT,
    price_included_requests       BIGINT,
    price_overage_cents_per_1000  BIGINT,
    created_at                    TEXT COLLATE "C" NOT NULL
);
CREATE INDEX plan_history_by_user ON plan_history (user_id, effective_at);

CREATE TABLE api_keys (
    id                   TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    key_hash             TEXT COLLATE "C" NOT NULL,     -- hex SHA-256 of the key; never the key
    key_prefix           TEXT NOT NULL,                 -- display form, e.g. 'sk_live_7fQa…'
    prefix               TEXT,                          -- issuing prefix; NULL for foreign imports
    user_id              TEXT COLLATE "C" NOT NULL REFERENCES users (user_id),
    name                 TEXT NOT NULL,
    environment          TEXT NOT NULL CHECK (environment IN ('live', 'test')),
    plan                 TEXT COLLATE "C" REFERENCES plans (name),  -- the key's own override
    created_at           TEXT COLLATE "C" NOT NULL,
    updated_at           TEXT COLLATE "C" NOT NULL,
    expires_at           TEXT COLLATE "C",
    last_used_at         TEXT COLLATE "C",
    request_count        BIGINT NOT NULL DEFAULT 0,
    is_active            BOOLEAN NOT NULL DEFAULT TRUE, -- FALSE once revoked
    enabled              BOOLEAN NOT NULL DEFAULT TRUE, -- FALSE while disabled
    revoked_at           TEXT COLLATE "C",
    replaced_by          TEXT COLLATE "C",
    rate_limit_per_hour  BIGINT,
    limits               TEXT,                          -- JSON windows replacing the plan's
    allowed_ips          TEXT,                          -- JSON [cidr]
    scopes               TEXT NOT NULL DEFAULT '[]',
    metadata             TEXT NOT NULL DEFAULT '{}',
    lineage_id           TEXT COLLATE "C" NOT NULL,     -- rate-limit state owner across rotations
    imported             BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE UNIQUE INDEX api_keys_by_hash ON api_keys (key_hash);
CREATE INDEX api_keys_by_user ON api_keys (user_id, created_at DESC, id DESC);
CREATE INDEX api_keys_by_created ON api_keys (created_at DESC, id DESC);
CREATE INDEX api_keys_by_state ON api_keys (is_active, enabled, expires_at);
CREATE INDEX api_keys_imported ON api_keys (imported) WHERE imported;

-- Every api_keys column but key_hash, plus the key's status and validity.
CREATE VIEW v_user_api_keys AS
SELECT
    id, key_prefix, prefix, user_id, name, environment, plan, created_at, updated_at,
    expires_at, last_used_at, request_count, is_active, enabled, revoked_at, replaced_by,
    rate_limit_per_hour, limits, allowed_ips, scopes, metadata, lineage_id, imported,
    status,
    status = 'active' AS is_valid
FROM (
    SELECT k.*,
        CASE
            WHEN NOT k.is_active THEN 'revoked'
            WHEN NOT k.enabled THEN 'disabled'
            WHEN k.expires_at IS NOT NULL AND k.expires_at <= keyward_now() THEN 'expired'
            ELSE 'active'
        END AS status
    FROM api_keys k
) keys;
