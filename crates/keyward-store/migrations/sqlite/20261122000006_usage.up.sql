-- Usage analytics (CONTRACT §6, §10 "Usage counting").
--
-- usage_rollups: one row per hour × key × endpoint × status × decision code × plan, with
-- request, rejection and unit counts and a latency histogram (l0..l13: responses within
-- 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000 ms, and slower). Written by
-- each node once a second (counts added), in the same transaction as request_count, so the
-- two always agree. Kept at least 400 days: summaries and invoices read only these.
--
-- api_key_usage: raw events (the seed schema plus the decision code, method and cost),
-- pruned after --usage-retention-days.
CREATE TABLE usage_rollups (
    hour            TEXT NOT NULL,   -- start of the hour, 'YYYY-MM-DDTHH:00:00.000Z'
    key_id          TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    environment     TEXT NOT NULL,       -- 'live' counts toward billing, 'test' does not
    plan            TEXT NOT NULL,   -- the user's plan when the requests were checked
    endpoint        TEXT NOT NULL,   -- '' when the caller did not say
    status_code     INTEGER NOT NULL,
    code            TEXT NOT NULL,
    requests        INTEGER NOT NULL DEFAULT 0,
    rejected        INTEGER NOT NULL DEFAULT 0,
    units           INTEGER NOT NULL DEFAULT 0,
    l0 INTEGER NOT NULL DEFAULT 0, l1 INTEGER NOT NULL DEFAULT 0, l2 INTEGER NOT NULL DEFAULT 0,
    l3 INTEGER NOT NULL DEFAULT 0, l4 INTEGER NOT NULL DEFAULT 0, l5 INTEGER NOT NULL DEFAULT 0,
    l6 INTEGER NOT NULL DEFAULT 0, l7 INTEGER NOT NULL DEFAULT 0, l8 INTEGER NOT NULL DEFAULT 0,
    l9 INTEGER NOT NULL DEFAULT 0, l10 INTEGER NOT NULL DEFAULT 0, l11 INTEGER NOT NULL DEFAULT 0,
    l12 INTEGER NOT NULL DEFAULT 0, l13 INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, key_id, endpoint, status_code, code, plan)
);
CREATE INDEX usage_rollups_by_key ON usage_rollups (key_id, hour);
CREATE INDEX usage_rollups_by_user ON usage_rollups (user_id, hour);

CREATE TABLE api_key_usage (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    api_key_id        TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    endpoint          TEXT NOT NULL,
    method            TEXT NOT NULL,
    timestamp         TEXT NOT NULL,
    response_time_ms  INTEGER,
    status_code       INTEGER NOT NULL,
    code              TEXT NOT NULL,
    cost              INTEGER NOT NULL
);
CREATE INDEX api_key_usage_by_time ON api_key_usage (timestamp);
CREATE INDEX api_key_usage_by_key ON api_key_usage (api_key_id, timestamp);

-- Each plan's price over time (a row whenever PUT /v1/plans changes it): an invoice bills a
-- segment at the price its plan had when the segment (or the billed month) began.
CREATE TABLE plan_prices (
    id                            INTEGER PRIMARY KEY AUTOINCREMENT,
    plan                          TEXT NOT NULL,
    effective_at                  TEXT NOT NULL,
    price_base_cents              INTEGER,
    price_included_requests       INTEGER,
    price_overage_cents_per_1000  INTEGER
);
CREATE INDEX plan_prices_by_plan ON plan_prices (plan, effective_at);
INSERT INTO plan_prices (plan, effective_at, price_base_cents, price_included_requests,
    price_overage_cents_per_1000)
SELECT name, '1970-01-01T00:00:00.000Z', price_base_cents, price_included_requests,
    price_overage_cents_per_1000 FROM plans;
