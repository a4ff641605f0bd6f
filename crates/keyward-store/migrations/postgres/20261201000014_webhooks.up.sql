-- Event webhooks: endpoints registered through the API, events raised in the transaction
-- of the change they describe (a transactional outbox), and one delivery per event and
-- endpoint subscribed when the event was raised.
CREATE TABLE webhook_endpoints (
    id                     TEXT COLLATE "C" PRIMARY KEY NOT NULL,   -- 'whk_' + ULID
    url                    TEXT NOT NULL,
    events                 TEXT NOT NULL,                 -- JSON array of event types, or ["*"]
    description            TEXT,
    enabled                BOOLEAN NOT NULL DEFAULT TRUE,
    secret                 TEXT NOT NULL,                 -- 'whsec_' + base64: signs deliveries
    previous_secret        TEXT,                          -- still signing until previous_secret_until
    previous_secret_until  TEXT COLLATE "C",
    failing_since          TEXT COLLATE "C",                        -- first failure since the last 2xx
    created_at             TEXT COLLATE "C" NOT NULL,
    updated_at             TEXT COLLATE "C" NOT NULL
);

CREATE TABLE webhook_events (
    id          TEXT COLLATE "C" PRIMARY KEY NOT NULL,   -- 'msg_' + ULID: the webhook-id, stable across retries
    type        TEXT NOT NULL,
    subject     TEXT NOT NULL,                 -- JSON: the records the event's data is made of
    created_at  TEXT COLLATE "C" NOT NULL
);
CREATE INDEX webhook_events_by_created ON webhook_events (created_at, id);

CREATE TABLE webhook_deliveries (
    id               TEXT COLLATE "C" PRIMARY KEY NOT NULL,   -- 'dlv_' + ULID
    event_id         TEXT COLLATE "C" NOT NULL REFERENCES webhook_events (id),
    endpoint_id      TEXT COLLATE "C" NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'dead')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  TEXT COLLATE "C" NOT NULL,
    attempted_at     TEXT COLLATE "C",
    response_status  BIGINT,
    response_body    TEXT,                          -- at most 1 KiB of the last answer
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, id);
