-- The billing outbox (CONTRACT §10 "Billing sinks"): events with stable ids, and one
-- delivery per event and sink. `plan.changed` events are written in the transaction
-- that changes the plan; `usage.metered` events (per user, hour and plan) once an hour
-- has closed. A delivery is retried with backoff until it succeeds or is dead-lettered.
CREATE TABLE billing_events (
    id          TEXT PRIMARY KEY NOT NULL,   -- stable: a retried delivery is the same event
    kind        TEXT NOT NULL CHECK (kind IN ('usage.metered', 'plan.changed')),
    user_id     TEXT NOT NULL,
    payload     TEXT NOT NULL,                  -- the JSON event, as delivered
    created_at  TEXT NOT NULL
);
CREATE INDEX billing_events_by_created ON billing_events (created_at);

CREATE TABLE billing_deliveries (
    event_id         TEXT NOT NULL REFERENCES billing_events (id),
    sink             TEXT NOT NULL,          -- 'webhook' or 'stripe'
    status           TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'skipped', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    last_error       TEXT,
    delivered_at     TEXT,
    PRIMARY KEY (event_id, sink)
);
CREATE INDEX billing_deliveries_due ON billing_deliveries (status, next_attempt_at);
