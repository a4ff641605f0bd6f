DROP INDEX api_keys_by_user_state;
