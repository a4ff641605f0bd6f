-- Self-service may only narrow what an admin set. Two facts make that checkable:
-- who disabled a key (a user may re-enable only a key its own keys or portal disabled), and
-- which metadata members an admin or the CLI set (read-only to self-service).
ALTER TABLE api_keys ADD COLUMN disabled_by TEXT;
ALTER TABLE api_keys ADD COLUMN locked_metadata TEXT NOT NULL DEFAULT '[]';

-- Before this migration nobody recorded who disabled a key or set a member: assume an admin,
-- so nothing an admin may have set becomes changeable by its user.
UPDATE api_keys SET disabled_by = 'admin' WHERE enabled = 0;
UPDATE api_keys SET locked_metadata =
    (SELECT COALESCE(json_group_array(key), '[]') FROM json_each(api_keys.metadata));

-- Times after year 9999 were once accepted (as '+10000-…', which sorts before '2026-…' as
-- text): bring them back to the latest time keyward accepts, so SQL and Rust agree again.
UPDATE api_keys SET expires_at = '9999-12-31T23:59:59.000Z' WHERE expires_at LIKE '+%';

DROP VIEW v_user_api_keys;
CREATE VIEW v_user_api_keys AS
SELECT
    id, key_prefix, prefix, user_id, name, environment, plan, created_at, updated_at,
    expires_at, last_used_at, request_count, is_active, enabled, revoked_at, replaced_by,
    rate_limit_per_hour, limits, allowed_ips, scopes, metadata, lineage_id, imported,
    disabled_by, locked_metadata,
    status,
    status = 'active' AS is_valid
FROM (
    SELECT k.*,
        CASE
            WHEN k.is_active = 0 THEN 'revoked'
            WHEN k.enabled = 0 THEN 'disabled'
            WHEN k.expires_at IS NOT NULL
                 AND k.expires_at <= strftime('%Y-%m-%dT%H:%M:%fZ', 'now') THEN 'expired'
            ELSE 'active'
        END AS status
    FROM api_keys k
);

DROP TRIGGER api_keys_changed_update;
CREATE TRIGGER api_keys_changed_update AFTER UPDATE OF
    id, key_hash, key_prefix, prefix, user_id, name, environment, plan, created_at,
    updated_at, expires_at, is_active, enabled, revoked_at, replaced_by,
    rate_limit_per_hour, limits, allowed_ips, scopes, metadata, lineage_id, imported,
    disabled_by, locked_metadata
ON api_keys
BEGIN
    INSERT INTO change_events (entity, entity_id, op, key_hash) VALUES ('key', NEW.id, 'update', NEW.key_hash);
END;
