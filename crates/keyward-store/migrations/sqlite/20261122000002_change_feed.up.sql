-- The change feed: every change to a key, user or plan appends (entity, id), in the same
-- transaction, by trigger, so even a direct SQL edit reaches every node's cache.
-- Updates that touch only usage bookkeeping (last_used_at, request_count) are not changes:
-- the UPDATE OF list names every other column.

CREATE TABLE change_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    entity      TEXT NOT NULL CHECK (entity IN ('key', 'user', 'plan')),
    entity_id   TEXT NOT NULL,
    key_hash    TEXT,            -- for keys: lets every node drop its cache entry directly
    at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TRIGGER api_keys_changed_insert AFTER INSERT ON api_keys
BEGIN
    INSERT INTO change_events (entity, entity_id, key_hash) VALUES ('key', NEW.id, NEW.key_hash);
END;

CREATE TRIGGER api_keys_changed_update AFTER UPDATE OF
    id, key_hash, key_prefix, prefix, user_id, name, environment, plan, created_at,
    updated_at, expires_at, is_active, enabled, revoked_at, replaced_by,
    rate_limit_per_hour, limits, allowed_ips, scopes, metadata, lineage_id, imported
ON api_keys
BEGIN
    INSERT INTO change_events (entity, entity_id, key_hash) VALUES ('key', NEW.id, NEW.key_hash);
END;

CREATE TRIGGER api_keys_changed_delete AFTER DELETE ON api_keys
BEGIN
    INSERT INTO change_events (entity, entity_id, key_hash) VALUES ('key', OLD.id, OLD.key_hash);
END;

CREATE TRIGGER users_changed_insert AFTER INSERT ON users
BEGIN
    INSERT INTO change_events (entity, entity_id) VALUES ('user', NEW.user_id);
END;

CREATE TRIGGER users_changed_update AFTER UPDATE ON users
BEGIN
    INSERT INTO change_events (entity, entity_id) VALUES ('user', NEW.user_id);
END;

CREATE TRIGGER users_changed_delete AFTER DELETE ON users
BEGIN
    INSERT INTO change_events (entity, entity_id) VALUES ('user', OLD.user_id);
END;

CREATE TRIGGER plans_changed_insert AFTER INSERT ON plans
BEGIN
    INSERT INTO change_events (entity, entity_id) VALUES ('plan', NEW.name);
END;

CREATE TRIGGER plans_changed_update AFTER UPDATE ON plans
BEGIN
    INSERT INTO change_events (entity, entity_id) VALUES ('plan', NEW.name);
END;

CREATE TRIGGER plans_changed_delete AFTER DELETE ON plans
BEGIN
    INSERT INTO change_events (entity, entity_id) VALUES ('plan', OLD.name);
END;
