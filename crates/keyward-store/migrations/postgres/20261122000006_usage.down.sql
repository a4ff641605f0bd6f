DROP TABLE plan_prices;
DROP TABLE api_key_usage;
DROP TABLE usage_rollups;
