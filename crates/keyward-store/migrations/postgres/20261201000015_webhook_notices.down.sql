DROP TABLE quota_threshold_notices;
DROP TABLE key_expiry_notices;
