-- Edge defences: per-extension source allowlists and class of service,
-- persisted bans and account lockouts, and a counter other processes poll
-- so a ban added or lifted from the CLI reaches a running server.

ALTER TABLE extensions ADD COLUMN allow_from TEXT NOT NULL DEFAULT '';
ALTER TABLE extensions ADD COLUMN class TEXT NOT NULL DEFAULT '';

CREATE TABLE bans (
	addr   TEXT    NOT NULL PRIMARY KEY,
	rule   TEXT    NOT NULL,
	reason TEXT    NOT NULL,
	cause  TEXT    NOT NULL, -- JSON array of strings
	start  INTEGER NOT NULL,
	end    INTEGER NOT NULL,
	level  INTEGER NOT NULL
) STRICT;

CREATE TABLE locks (
	account TEXT    NOT NULL PRIMARY KEY,
	until   INTEGER NOT NULL,
	level   INTEGER NOT NULL,
	reason  TEXT    NOT NULL
) STRICT;

INSERT INTO counters (name, value) VALUES ('guard', 0);

CREATE TRIGGER bans_version_insert AFTER INSERT ON bans BEGIN UPDATE counters SET value = value + 1 WHERE name = 'guard'; END;
CREATE TRIGGER bans_version_update AFTER UPDATE ON bans BEGIN UPDATE counters SET value = value + 1 WHERE name = 'guard'; END;
CREATE TRIGGER bans_version_delete AFTER DELETE ON bans BEGIN UPDATE counters SET value = value + 1 WHERE name = 'guard'; END;
CREATE TRIGGER locks_version_insert AFTER INSERT ON locks BEGIN UPDATE counters SET value = value + 1 WHERE name = 'guard'; END;
CREATE TRIGGER locks_version_update AFTER UPDATE ON locks BEGIN UPDATE counters SET value = value + 1 WHERE name = 'guard'; END;
CREATE TRIGGER locks_version_delete AFTER DELETE ON locks BEGIN UPDATE counters SET value = value + 1 WHERE name = 'guard'; END;
