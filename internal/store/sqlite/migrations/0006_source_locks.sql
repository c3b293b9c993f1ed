-- Locks of one account for one source address: what a failing device
-- behind an address that also carries authenticated devices gets instead
-- of a ban of the whole address. Changes go to the feed under the lock
-- topic keyed by account, like the account's own lock.

CREATE TABLE source_locks (
	account TEXT    NOT NULL,
	source  TEXT    NOT NULL,
	until   INTEGER NOT NULL,
	level   INTEGER NOT NULL,
	reason  TEXT    NOT NULL,
	PRIMARY KEY (account, source)
) STRICT;

CREATE TRIGGER source_locks_change_insert AFTER INSERT ON source_locks BEGIN
	INSERT INTO changes (topic, key, at) VALUES ('lock', NEW.account, CAST(unixepoch('subsec') * 1000000000 AS INTEGER)); END;
CREATE TRIGGER source_locks_change_update AFTER UPDATE ON source_locks BEGIN
	INSERT INTO changes (topic, key, at) VALUES ('lock', NEW.account, CAST(unixepoch('subsec') * 1000000000 AS INTEGER)); END;
CREATE TRIGGER source_locks_change_delete AFTER DELETE ON source_locks BEGIN
	INSERT INTO changes (topic, key, at) VALUES ('lock', OLD.account, CAST(unixepoch('subsec') * 1000000000 AS INTEGER)); END;
