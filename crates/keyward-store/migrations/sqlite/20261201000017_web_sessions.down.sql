DROP TABLE portal_links;
DROP TABLE web_sessions;
