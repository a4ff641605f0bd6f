DROP TRIGGER api_keys_changed_update;
CREATE TRIGGER api_keys_changed_update AFTER UPDATE OF
    id, key_hash, key_prefix, prefix, user_id, name, environment, plan, created_at,
    updated_at, expires_at, is_active, enabled, revoked_at, replaced_by,
    rate_limit_per_hour, limits, allowed_ips, scopes, metadata, lineage_id, imported
ON api_keys
BEGIN
    INSERT INTO change_events (entity, entity_id, op, key_hash) VALUES ('key', NEW.id, 'update', NEW.key_hash);
END;

DROP VIEW v_user_api_keys;
-- The view names every column (PostgreSQL expands k.*): drop it before the columns.
ALTER TABLE api_keys DROP COLUMN locked_metadata;
ALTER TABLE api_keys DROP COLUMN disabled_by;

CREATE VIEW v_user_api_keys AS
SELECT
    id, key_prefix, prefix, user_id, name, environment, plan, created_at, updated_at,
    expires_at, last_used_at, request_count, is_active, enabled, revoked_at, replaced_by,
    rate_limit_per_hour, limits, allowed_ips, scopes, metadata, lineage_id, imported,
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

