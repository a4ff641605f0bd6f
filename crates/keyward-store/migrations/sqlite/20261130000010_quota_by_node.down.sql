DROP TABLE quota_usage_by_node;
