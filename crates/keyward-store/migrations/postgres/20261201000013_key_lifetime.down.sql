ALTER TABLE plans DROP COLUMN max_key_lifetime_days;
