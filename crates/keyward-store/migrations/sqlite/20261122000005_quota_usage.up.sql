-- Admitted units of each user's live keys per calendar month (UTC), for monthly quotas.
-- Written in batches by the usage writer; read when a node first checks a user's quota,
-- so the quota survives restarts.
CREATE TABLE quota_usage (
    user_id     TEXT NOT NULL,
    period      TEXT NOT NULL,            -- 'YYYY-MM'
    units       INTEGER NOT NULL DEFAULT 0,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (user_id, period)
);
