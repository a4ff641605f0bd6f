-- The change feed: every change to a key, user or plan appends (entity, id), in the same
-- transaction, by trigger, so even a direct SQL edit reaches every node's cache.
-- Updates that touch only usage bookkeeping (last_used_at, request_count) are not changes:
-- the UPDATE OF list names every other column.

CREATE TABLE change_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    entity      TEXT NOT NULL CHECK (entity IN ('key', 'user', 'plan')),
    entity_id   TEXT NOT NULL,
    op          TEXT NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
    key_hash    TEXT,            -- for keys: lets every node drop its cache entry directly
    at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TRIGGER api_keys_changed_insert AFTER INSERT ON api_keys
BEGIN
    INSERT INTO change_events (entity, entity_id, op, key_hash) VALUES ('key', NEW.id, 'insert', NEW.key_hash);
END;

CREATE TRIGGER api_keys_changed_update AFTER UPDATE OF
    id, key_hash, key_prefix, prefix, user_id, name, environment, plan, created_at,
    updated_at, expires_at, is_active, enabled, revoked_at, replaced_by,
    rate_limit_per_hour, limits, allowed_ips, scopes, metadata, lineage_id, imported
ON api_keys
BEGIN
    INSERT INTO change_events (entity, entity_id, op, key_hash) VALUES ('key', NEW.id, 'update', NEW.key_hash);
END;

CREATE TRIGGER api_keys_changed_delete AFTER DELETE ON api_keys
BEGIN
    INSERT INTO change_events (entity, entity_id, op, key_hash) VALUES ('key', OLD.id, 'delete', OLD.key_hash);
END;

CREATE TRIGGER users_changed_insert AFTER INSERT ON users
BEGIN
    INSERT INTO change_events (entity, entity_id, op) VALUES ('user', NEW.user_id, 'insert');
END;

CREATE TRIGGER users_changed_update AFTER UPDATE ON users
BEGIN
    INSERT INTO change_events (entity, entity_id, op) VALUES ('user', NEW.user_id, 'update');
END;

CREATE TRIGGER users_changed_delete AFTER DELETE ON users
BEGIN
    INSERT INTO change_events (entity, entity_id, op) VALUES ('user', OLD.user_id, 'delete');
END;

CREATE TRIGGER plans_changed_insert AFTER INSERT ON plans
BEGIN
    INSERT INTO change_events (entity, entity_id, op) VALUES ('plan', NEW.name, 'insert');
END;

CREATE TRIGGER plans_changed_update AFTER UPDATE ON plans
BEGIN
    INSERT INTO change_events (entity, entity_id, op) VALUES ('plan', NEW.name, 'update');
END;

CREATE TRIGGER plans_changed_delete AFTER DELETE ON plans
BEGIN
    INSERT INTO change_events (entity, entity_id, op) VALUES ('plan', OLD.name, 'delete');
END;
