-- Notices raised once: key.expiring and key.expired once per key and expiry value,
-- quota.threshold once per user, month and threshold. Each is recorded here in the
-- transaction that raises its event, whichever node noticed it.
CREATE TABLE key_expiry_notices (
    key_id      TEXT COLLATE "C" NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('expiring', 'expired')),
    expires_at  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (key_id, kind, expires_at)
);

CREATE TABLE quota_threshold_notices (
    user_id  TEXT COLLATE "C" NOT NULL,
    period   TEXT COLLATE "C" NOT NULL,              -- YYYY-MM
    percent  BIGINT NOT NULL CHECK (percent IN (80, 100)),
    PRIMARY KEY (user_id, period, percent)
);
