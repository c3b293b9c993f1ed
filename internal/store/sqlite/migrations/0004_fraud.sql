-- Outbound calling suspended by the toll-fraud guard (until an admin
-- lifts it), and the caller-IDs an extension may present.

CREATE TABLE suspensions (
	extension TEXT    NOT NULL PRIMARY KEY,
	reason    TEXT    NOT NULL,
	since     INTEGER NOT NULL
) STRICT;

ALTER TABLE extensions ADD COLUMN caller_ids TEXT NOT NULL DEFAULT '';
