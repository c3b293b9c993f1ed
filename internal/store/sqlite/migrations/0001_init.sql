-- Initial schema. Times are unix nanoseconds (0 = unset), addresses are
-- netip.AddrPort text ('' = unset), Event.Fields is a JSON object as text.

CREATE TABLE extensions (
	number     TEXT    NOT NULL PRIMARY KEY,
	name       TEXT    NOT NULL,
	realm      TEXT    NOT NULL,
	ha1_md5    BLOB,
	ha1_sha256 BLOB,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
) STRICT;

-- Counters that other processes poll. The extensions counter is bumped by
-- triggers, so every change to extensions moves it in the same transaction,
-- whoever makes the change (server, CLI, or a hand-run sqlite3 shell).
CREATE TABLE counters (
	name  TEXT    NOT NULL PRIMARY KEY,
	value INTEGER NOT NULL
) STRICT;

INSERT INTO counters (name, value) VALUES ('extensions', 0);

CREATE TRIGGER extensions_version_insert AFTER INSERT ON extensions
BEGIN
	UPDATE counters SET value = value + 1 WHERE name = 'extensions';
END;

CREATE TRIGGER extensions_version_update AFTER UPDATE ON extensions
BEGIN
	UPDATE counters SET value = value + 1 WHERE name = 'extensions';
END;

CREATE TRIGGER extensions_version_delete AFTER DELETE ON extensions
BEGIN
	UPDATE counters SET value = value + 1 WHERE name = 'extensions';
END;

CREATE TABLE bindings (
	number     TEXT    NOT NULL REFERENCES extensions (number) ON DELETE CASCADE,
	contact    TEXT    NOT NULL,
	source     TEXT    NOT NULL,
	transport  TEXT    NOT NULL,
	conn_id    TEXT    NOT NULL,
	call_id    TEXT    NOT NULL,
	cseq       INTEGER NOT NULL,
	user_agent TEXT    NOT NULL,
	expires    INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (number, contact)
) STRICT, WITHOUT ROWID;

-- Serves the expiry sweep in SaveBindings and the unexpired scan in LoadBindings.
CREATE INDEX bindings_expires ON bindings (expires);

CREATE TABLE call_records (
	id             TEXT    NOT NULL PRIMARY KEY,
	from_party     TEXT    NOT NULL,
	to_party       TEXT    NOT NULL,
	source         TEXT    NOT NULL,
	started_at     INTEGER NOT NULL,
	answered_at    INTEGER NOT NULL,
	ended_at       INTEGER NOT NULL,
	disposition    TEXT    NOT NULL,
	cause          TEXT    NOT NULL,
	caller_media   TEXT    NOT NULL,
	callee_media   TEXT    NOT NULL,
	media_in_clear INTEGER NOT NULL
) STRICT;

CREATE INDEX call_records_started_at ON call_records (started_at);

CREATE TABLE events (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	time     INTEGER NOT NULL,
	type     TEXT    NOT NULL,
	severity TEXT    NOT NULL,
	source   TEXT    NOT NULL,
	account  TEXT    NOT NULL,
	message  TEXT    NOT NULL,
	fields   TEXT    NOT NULL
) STRICT;

-- (type, time) and (account, time) serve the filter and the newest-first
-- order in one index walk.
CREATE INDEX events_time ON events (time);
CREATE INDEX events_type ON events (type, time);
CREATE INDEX events_account ON events (account, time);
