-- Event webhooks: endpoints registered through the API, events raised in the transaction
-- of the change they describe (a transactional outbox), and one delivery per event and
-- endpoint subscribed when the event was raised.
CREATE TABLE webhook_endpoints (
    id                     TEXT PRIMARY KEY NOT NULL,   -- 'whk_' + ULID
    url                    TEXT NOT NULL,
    events                 TEXT NOT NULL,                 -- JSON array of event types, or ["*"]
    description            TEXT,
    enabled                INTEGER NOT NULL DEFAULT 1,
    secret                 TEXT NOT NULL,                 -- 'whsec_' + base64: signs deliveries
    previous_secret        TEXT,                          -- still signing until previous_secret_until
    previous_secret_until  TEXT,
    failing_since          TEXT,                        -- first failure since the last 2xx
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL
);

CREATE TABLE webhook_events (
    id          TEXT PRIMARY KEY NOT NULL,   -- 'msg_' + ULID: the webhook-id, stable across retries
    type        TEXT NOT NULL,
    subject     TEXT NOT NULL,                 -- JSON: the records the event's data is made of
    created_at  TEXT NOT NULL
);
CREATE INDEX webhook_events_by_created ON webhook_events (created_at, id);

CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY NOT NULL,   -- 'dlv_' + ULID
    event_id         TEXT NOT NULL REFERENCES webhook_events (id),
    endpoint_id      TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    attempted_at     TEXT,
    response_status  INTEGER,
    response_body    TEXT,                          -- at most 1 KiB of the last answer
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, id);
