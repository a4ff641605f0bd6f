-- The change feed: every change to a key, user or plan appends (entity, id), in the same
-- transaction, by trigger, so even a direct SQL edit reaches every node's cache.
-- Updates that touch only usage bookkeeping (last_used_at, request_count) are not changes:
-- the UPDATE OF list names every other column.
--
-- Each new event is also announced with NOTIFY keyward_changes (delivered at commit), so
-- nodes that LISTEN catch up at once instead of at their next poll.

CREATE TABLE change_events (
    id          BIGSERIAL PRIMARY KEY,
    entity      TEXT NOT NULL CHECK (entity IN ('key', 'user', 'plan')),
    entity_id   TEXT NOT NULL,
    op          TEXT NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
    key_hash    TEXT,            -- for keys: lets every node drop its cache entry directly
    at          TEXT COLLATE "C" NOT NULL DEFAULT keyward_now()
);

CREATE FUNCTION keyward_key_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO change_events (entity, entity_id, op, key_hash) VALUES ('key', OLD.id, 'delete', OLD.key_hash);
    ELSE
        INSERT INTO change_events (entity, entity_id, op, key_hash) VALUES ('key', NEW.id, lower(TG_OP), NEW.key_hash);
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION keyward_user_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO change_events (entity, entity_id, op) VALUES ('user', OLD.user_id, 'delete');
    ELSE
        INSERT INTO change_events (entity, entity_id, op) VALUES ('user', NEW.user_id, lower(TG_OP));
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION keyward_plan_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO change_events (entity, entity_id, op) VALUES ('plan', OLD.name, 'delete');
    ELSE
        INSERT INTO change_events (entity, entity_id, op) VALUES ('plan', NEW.name, lower(TG_OP));
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION keyward_announce_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('keyward_changes', NEW.id::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER api_keys_changed_insert AFTER INSERT ON api_keys
    FOR EACH ROW EXECUTE FUNCTION keyward_key_changed();
CREATE TRIGGER api_keys_changed_update AFTER UPDATE OF
    id, key_hash, key_prefix, prefix, user_id, name, environment, plan, created_at,
    updated_at, expires_at, is_active, enabled, revoked_at, replaced_by,
    rate_limit_per_hour, limits, allowed_ips, scopes, metadata, lineage_id, imported
ON api_keys FOR EACH ROW EXECUTE FUNCTION keyward_key_changed();
CREATE TRIGGER api_keys_changed_delete AFTER DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION keyward_key_changed();

CREATE TRIGGER users_changed AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION keyward_user_changed();
CREATE TRIGGER plans_changed AFTER INSERT OR UPDATE OR DELETE ON plans
    FOR EACH ROW EXECUTE FUNCTION keyward_plan_changed();
CREATE TRIGGER change_events_announced AFTER INSERT ON change_events
    FOR EACH ROW EXECUTE FUNCTION keyward_announce_change();
