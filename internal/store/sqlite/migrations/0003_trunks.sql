-- Carrier trunks and the outbound fields of call records.

CREATE TABLE trunks (
	name   TEXT NOT NULL PRIMARY KEY,
	config TEXT NOT NULL -- JSON of store.Trunk (its secret sealed by the caller)
) STRICT;

ALTER TABLE call_records ADD COLUMN e164 TEXT NOT NULL DEFAULT '';
ALTER TABLE call_records ADD COLUMN country TEXT NOT NULL DEFAULT '';
ALTER TABLE call_records ADD COLUMN class TEXT NOT NULL DEFAULT '';
ALTER TABLE call_records ADD COLUMN estimated_cost REAL NOT NULL DEFAULT 0;
ALTER TABLE call_records ADD COLUMN trunk TEXT NOT NULL DEFAULT '';
ALTER TABLE call_records ADD COLUMN fraud TEXT NOT NULL DEFAULT '';
