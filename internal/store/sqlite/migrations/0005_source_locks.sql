-- Locks of one account for one source address: what a failing device
-- behind an address that also carries authenticated devices gets instead
-- of a ban of the whole address.

CREATE TABLE source_locks (
	account TEXT    NOT NULL,
	source  TEXT    NOT NULL,
	until   INTEGER NOT NULL,
	level   INTEGER NOT NULL,
	reason  TEXT    NOT NULL,
	PRIMARY KEY (account, source)
) STRICT;

CREATE TRIGGER source_locks_version_insert AFTER INSERT ON source_locks BEGIN UPDATE counters SET value = value + 1 WHERE name = 'guard'; END;
CREATE TRIGGER source_locks_version_update AFTER UPDATE ON source_locks BEGIN UPDATE counters SET value = value + 1 WHERE name = 'guard'; END;
CREATE TRIGGER source_locks_version_delete AFTER DELETE ON source_locks BEGIN UPDATE counters SET value = value + 1 WHERE name = 'guard'; END;
