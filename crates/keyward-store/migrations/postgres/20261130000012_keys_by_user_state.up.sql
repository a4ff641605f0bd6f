-- A user's active key count (users list, user objects, max_keys) read from one index
-- range instead of scanning every active key per user: the planner otherwise picked the
-- (is_active, enabled) index and listing 1,000 users took seconds.
CREATE INDEX api_keys_by_user_state ON api_keys (user_id, is_active, enabled, expires_at);
