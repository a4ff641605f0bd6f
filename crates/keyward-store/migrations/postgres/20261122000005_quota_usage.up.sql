-- Admitted units of each user's live keys per calendar month (UTC), for monthly quotas.
-- Written in batches by the usage writer; read when a node first checks a user's quota,
-- so the quota survives restarts.
CREATE TABLE quota_usage (
    user_id     TEXT COLLATE "C" NOT NULL,
    period      TEXT COLLATE "C" NOT NULL,            -- 'YYYY-MM'
    units       BIGINT NOT NULL DEFAULT 0,
    updated_at  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (user_id, period)
);
