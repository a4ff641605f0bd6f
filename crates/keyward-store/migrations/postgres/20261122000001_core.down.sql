DROP VIEW v_user_api_keys;
DROP TABLE api_keys;
DROP TABLE plan_history;
DROP TABLE users;
DROP TABLE plans;
DROP FUNCTION keyward_now();
