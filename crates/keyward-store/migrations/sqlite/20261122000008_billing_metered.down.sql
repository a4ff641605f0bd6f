DROP TABLE billing_metered;
