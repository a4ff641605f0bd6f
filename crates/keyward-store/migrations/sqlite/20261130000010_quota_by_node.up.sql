-- Admitted units of each user's live keys per calendar month (UTC) and per node process
-- that admitted them; quota_usage keeps their sum. A shared limiter that lost its figure
-- (Redis flushed or restarted) rebuilds it from these rows merged with what each live node
-- knows it admitted (units it has not written yet included), taking per node the larger
-- figure: exact, whatever the order in which the nodes and the rebuild meet.
CREATE TABLE quota_usage_by_node (
    user_id     TEXT NOT NULL,
    period      TEXT NOT NULL,            -- 'YYYY-MM'
    node        TEXT NOT NULL,            -- one node process (a ULID chosen at start)
    units       INTEGER NOT NULL DEFAULT 0,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (user_id, period, node)
);

-- Units written before nodes were told apart count as one earlier node's.
INSERT INTO quota_usage_by_node (user_id, period, node, units, updated_at)
SELECT user_id, period, 'before-nodes', units, updated_at FROM quota_usage;
