-- Which claim holds a delivery: an attempt's outcome is recorded only by the claim that
-- made it, so a late answer after its lease ended cannot overwrite another node's.
ALTER TABLE webhook_deliveries ADD COLUMN claim TEXT COLLATE "C";
