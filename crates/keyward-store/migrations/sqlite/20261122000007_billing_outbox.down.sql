DROP TABLE billing_deliveries;
DROP TABLE billing_events;
