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
    hour            TEXT COLLATE "C" NOT NULL,   -- start of the hour, 'YYYY-MM-DDTHH:00:00.000Z'
    key_id          TEXT COLLATE "C" NOT NULL,
    user_id         TEXT COLLATE "C" NOT NULL,
    environment     TEXT NOT NULL,       -- 'live' counts toward billing, 'test' does not
    plan            TEXT COLLATE "C" NOT NULL,   -- the user's plan when the requests were checked
    endpoint        TEXT COLLATE "C" NOT NULL,   -- '' when the caller did not say
    status_code     BIGINT NOT NULL,
    code            TEXT COLLATE "C" NOT NULL,
    requests        BIGINT NOT NULL DEFAULT 0,
    rejected        BIGINT NOT NULL DEFAULT 0,
    units           BIGINT NOT NULL DEFAULT 0,
    l0 BIGINT NOT NULL DEFAULT 0, l1 BIGINT NOT NULL DEFAULT 0, l2 BIGINT NOT NULL DEFAULT 0,
    l3 BIGINT NOT NULL DEFAULT 0, l4 BIGINT NOT NULL DEFAULT 0, l5 BIGINT NOT NULL DEFAULT 0,
    l6 BIGINT NOT NULL DEFAULT 0, l7 BIGINT NOT NULL DEFAULT 0, l8 BIGINT NOT NULL DEFAULT 0,
    l9 BIGINT NOT NULL DEFAULT 0, l10 BIGINT NOT NULL DEFAULT 0, l11 BIGINT NOT NULL DEFAULT 0,
    l12 BIGINT NOT NULL DEFAULT 0, l13 BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, key_id, endpoint, status_code, code, plan)
);
CREATE INDEX usage_rollups_by_key ON usage_rollups (key_id, hour);
CREATE INDEX usage_rollups_by_user ON usage_rollups (user_id, hour);

CREATE TABLE api_key_usage (
    id                BIGSERIAL PRIMARY KEY,
    api_key_id        TEXT COLLATE "C" NOT NULL,
    user_id           TEXT COLLATE "C" NOT NULL,
    endpoint          TEXT NOT NULL,
    method            TEXT NOT NULL,
    timestamp         TEXT COLLATE "C" NOT NULL,
    response_time_ms  BIGINT,
    status_code       BIGINT NOT NULL,
    code              TEXT NOT NULL,
    cost              BIGINT NOT NULL
);
CREATE INDEX api_key_usage_by_time ON api_key_usage (timestamp);
CREATE INDEX api_key_usage_by_key ON api_key_usage (api_key_id, timestamp);

-- Each plan's price over time (a row whenever PUT /v1/plans changes it): an invoice bills a
-- segment at the price its plan had when the segment (or the billed month) began.
CREATE TABLE plan_prices (
    id                            BIGSERIAL PRIMARY KEY,
    plan                          TEXT COLLATE "C" NOT NULL,
    effective_at                  TEXT COLLATE "C" NOT NULL,
    price_base_cents              BIGINT,
    price_included_requests       BIGINT,
    price_overage_cents_per_1000  BIGINT
);
CREATE INDEX plan_prices_by_plan ON plan_prices (plan, effective_at);
INSERT INTO plan_prices (plan, effective_at, price_base_cents, price_included_requests,
    price_overage_cents_per_1000)
SELECT name, '1970-01-01T00:00:00.000Z', price_base_cents, price_included_requests,
    price_overage_cents_per_1000 FROM plans;
