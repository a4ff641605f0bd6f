-- A plan may cap how long its users' new and rotated keys live (days); NULL: no cap.
ALTER TABLE plans ADD COLUMN max_key_lifetime_days BIGINT CHECK (max_key_lifetime_days BETWEEN 1 AND 36500);
