package sqlite

import (
	"context"
	"fmt"
	"time"
)

// Each purge deletes one bounded batch through a rowid subquery, so the
// write lock is held for one short statement and the server's own writes
// (bindings, events) interleave with a long purge.

// PurgeEvents deletes up to limit events older than before.
func (d *conn) PurgeEvents(ctx context.Context, before time.Time, limit int) (int, error) {
	return d.purge(ctx, "events", `DELETE FROM events WHERE id IN (SELECT id FROM events WHERE time < ? ORDER BY time LIMIT ?)`, nanos(before), limit)
}

// PurgeCallRecords deletes up to limit call records that started before before.
func (d *conn) PurgeCallRecords(ctx context.Context, before time.Time, limit int) (int, error) {
	return d.purge(ctx, "call records", `DELETE FROM call_records WHERE rowid IN (SELECT rowid FROM call_records WHERE started_at < ? ORDER BY started_at LIMIT ?)`, nanos(before), limit)
}

// PurgeExpired deletes up to limit bans, up to limit account locks and up
// to limit source locks that ended before now.
func (d *conn) PurgeExpired(ctx context.Context, now time.Time, limit int) (int, error) {
	n, err := d.purge(ctx, "expired bans", `DELETE FROM bans WHERE addr IN (SELECT addr FROM bans WHERE end <= ? LIMIT ?)`, nanos(now), limit)
	if err != nil {
		return n, err
	}
	m, err := d.purge(ctx, "expired locks", `DELETE FROM locks WHERE account IN (SELECT account FROM locks WHERE until <= ? LIMIT ?)`, nanos(now), limit)
	if err != nil {
		return n + m, err
	}
	k, err := d.purge(ctx, "expired source locks", `DELETE FROM source_locks WHERE rowid IN (SELECT rowid FROM source_locks WHERE until <= ? LIMIT ?)`, nanos(now), limit)
	return n + m + k, err
}

// PurgeChanges deletes up to limit change-feed rows older than before.
func (d *conn) PurgeChanges(ctx context.Context, before time.Time, limit int) (int, error) {
	return d.purge(ctx, "changes", `DELETE FROM changes WHERE seq IN (SELECT seq FROM changes WHERE at < ? ORDER BY seq LIMIT ?)`, nanos(before), limit)
}

func (d *conn) purge(ctx context.Context, what, q string, before int64, limit int) (int, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("purge %s: limit must be positive", what)
	}
	res, err := d.w.ExecContext(ctx, q, before, limit)
	if err != nil {
		return 0, fmt.Errorf("purge %s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("purge %s: %w", what, err)
	}
	return int(n), nil
}
