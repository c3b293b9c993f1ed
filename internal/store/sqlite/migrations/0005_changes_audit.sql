-- The change feed replaces the polled counters: every committed change to
-- a row that running subsystems mirror in memory adds a (topic, key) row,
-- written by triggers so that it moves in the same transaction whoever
-- makes the change. Readers ask for rows after the last seq they saw.
-- The audit log holds one hash-chained entry per management change; the
-- events table gains the event's own unique id for SIEM deduplication.

DROP TRIGGER extensions_version_insert;
DROP TRIGGER extensions_version_update;
DROP TRIGGER extensions_version_delete;
DROP TRIGGER bans_version_insert;
DROP TRIGGER bans_version_update;
DROP TRIGGER bans_version_delete;
DROP TRIGGER locks_version_insert;
DROP TRIGGER locks_version_update;
DROP TRIGGER locks_version_delete;
DROP TABLE counters;

CREATE TABLE changes (
	seq   INTEGER PRIMARY KEY AUTOINCREMENT,
	topic TEXT    NOT NULL,
	key   TEXT    NOT NULL,
	at    INTEGER NOT NULL
) STRICT;

CREATE INDEX changes_at ON changes (at);

CREATE TRIGGER extensions_change_insert AFTER INSERT ON extensions BEGIN
	INSERT INTO changes (topic, key, at) VALUES ('extension', NEW.number, CAST(unixepoch('subsec') * 1000000000 AS INTEGER)); END;
CREATE TRIGGER extensions_change_update AFTER UPDATE ON extensions BEGIN
	INSERT INTO changes (topic, key, at) VALUES ('extension', NEW.number, CAST(unixepoch('subsec') * 1000000000 AS INTEGER)); END;
CREATE TRIGGER extensions_change_delete AFTER DELETE ON extensions BEGIN
	INSERT INTO changes (topic, key, at) VALUES ('extension', OLD.number, CAST(unixepoch('subsec') * 1000000000 AS INTEGER)); END;

CREATE TRIGGER bans_change_insert AFTER INSERT ON bans BEGIN
	INSERT INTO changes (topic, key, at) VALUES ('ban', NEW.addr, CAST(unixepoch('subsec') * 1000000000 AS INTEGER)); END;
CREATE TRIGGER bans_change_update AFTER UPDATE ON bans BEGIN
	INSERT INTO changes (topic, key, at) VALUES ('ban', NEW.addr, CAST(unixepoch('subsec') * 1000000000 AS INTEGER)); END;
CREATE TRIGGER bans_change_delete AFTER DELETE ON bans BEGIN
	INSERT INTO changes (topic, key, at) VALUES ('ban', OLD.addr, CAST(unixepoch('subsec') * 1000000000 AS INTEGER)); END;

CREATE TRIGGER locks_change_insert AFTER INSERT ON locks BEGIN
	INSERT INTO changes (topic, key, at) VALUES ('lock', NEW.account, CAST(unixepoch('subsec') * 1000000000 AS INTEGER)); END;
CREATE TRIGGER locks_change_update AFTER UPDATE ON locks BEGIN
	INSERT INTO changes (topic, key, at) VALUES ('lock', NEW.account, CAST(unixepoch('subsec') * 1000000000 AS INTEGER)); END;
CREATE TRIGGER locks_change_delete AFTER DELETE ON locks BEGIN
	INSERT INTO changes (topic, key, at) VALUES ('lock', OLD.account, CAST(unixepoch('subsec') * 1000000000 AS INTEGER)); END;

CREATE TRIGGER suspensions_change_insert AFTER INSERT ON suspensions BEGIN
	INSERT INTO changes (topic, key, at) VALUES ('suspension', NEW.extension, CAST(unixepoch('subsec') * 1000000000 AS INTEGER)); END;
CREATE TRIGGER suspensions_change_update AFTER UPDATE ON suspensions BEGIN
	INSERT INTO changes (topic, key, at) VALUES ('suspension', NEW.extension, CAST(unixepoch('subsec') * 1000000000 AS INTEGER)); END;
CREATE TRIGGER suspensions_change_delete AFTER DELETE ON suspensions BEGIN
	INSERT INTO changes (topic, key, at) VALUES ('suspension', OLD.extension, CAST(unixepoch('subsec') * 1000000000 AS INTEGER)); END;

CREATE TRIGGER trunks_change_insert AFTER INSERT ON trunks BEGIN
	INSERT INTO changes (topic, key, at) VALUES ('trunk', NEW.name, CAST(unixepoch('subsec') * 1000000000 AS INTEGER)); END;
CREATE TRIGGER trunks_change_update AFTER UPDATE ON trunks BEGIN
	INSERT INTO changes (topic, key, at) VALUES ('trunk', NEW.name, CAST(unixepoch('subsec') * 1000000000 AS INTEGER)); END;
CREATE TRIGGER trunks_change_delete AFTER DELETE ON trunks BEGIN
	INSERT INTO changes (topic, key, at) VALUES ('trunk', OLD.name, CAST(unixepoch('subsec') * 1000000000 AS INTEGER)); END;

ALTER TABLE events ADD COLUMN uid TEXT NOT NULL DEFAULT '';
CREATE INDEX events_source ON events (source, time);
CREATE UNIQUE INDEX events_uid ON events (uid) WHERE uid <> '';

CREATE TABLE audit_log (
	seq       INTEGER NOT NULL PRIMARY KEY,
	time      INTEGER NOT NULL,
	actor     TEXT    NOT NULL,
	role      TEXT    NOT NULL,
	channel   TEXT    NOT NULL,
	source    TEXT    NOT NULL,
	action    TEXT    NOT NULL,
	target    TEXT    NOT NULL,
	before    TEXT    NOT NULL,
	after     TEXT    NOT NULL,
	prev_hash TEXT    NOT NULL,
	hash      TEXT    NOT NULL
) STRICT;

CREATE INDEX audit_log_time ON audit_log (time);
