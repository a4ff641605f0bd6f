-- What has been metered to billing providers, per user, hour and plan: usage that reaches
-- the database after its hour was first metered (a node that was cut off for a while) is
-- sent later as a further `usage.metered` event carrying the difference.
CREATE TABLE billing_metered (
    user_id    TEXT COLLATE "C" NOT NULL,
    hour       TEXT COLLATE "C" NOT NULL,
    plan       TEXT COLLATE "C" NOT NULL,
    units      BIGINT NOT NULL,
    revisions  BIGINT NOT NULL,    -- usage.metered events sent for this hour so far
    PRIMARY KEY (user_id, hour, plan)
);
CREATE INDEX billing_metered_by_hour ON billing_metered (hour);
