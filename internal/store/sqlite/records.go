package sqlite

import (
	"context"
	"errors"
	"fmt"

	"github.com/veilig/veilig/internal/store"
)

const callRecordCols = `id, from_party, to_party, source, started_at, answered_at, ended_at,
	disposition, cause, caller_media, callee_media, media_in_clear,
	e164, country, class, estimated_cost, trunk, fraud`

// InsertCallRecords inserts rs atomically: a duplicate ID fails the whole
// batch with store.ErrExists.
func (d *DB) InsertCallRecords(ctx context.Context, rs []store.CallRecord) error {
	if len(rs) == 0 {
		return nil
	}
	for _, r := range rs {
		if r.ID == "" {
			return errors.New("insert call records: empty id")
		}
	}
	tx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("insert call records: %w", err)
	}
	defer tx.Rollback()
	ins, err := tx.PrepareContext(ctx,
		`INSERT INTO call_records (`+callRecordCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("insert call records: prepare: %w", err)
	}
	defer ins.Close()
	for _, r := range rs {
		_, err := ins.ExecContext(ctx, r.ID, r.From, r.To, addrText(r.Source),
			nanos(r.StartedAt), nanos(r.AnsweredAt), nanos(r.EndedAt),
			r.Disposition, r.Cause, r.CallerMedia, r.CalleeMedia, r.MediaInClear,
			r.E164, r.Country, r.Class, r.EstimatedCost, r.Trunk, r.Fraud)
		if isUniqueViolation(err) {
			return fmt.Errorf("insert call record %s: %w", r.ID, store.ErrExists)
		}
		if err != nil {
			return fmt.Errorf("insert call record %s: %w", r.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("insert call records: commit: %w", err)
	}
	return nil
}

// ListCallRecords returns up to limit records, newest StartedAt first
// (ties in insertion order, newest first). limit <= 0 means no limit.
func (d *DB) ListCallRecords(ctx context.Context, limit int) ([]store.CallRecord, error) {
	return d.listCallRecords(ctx, "", limit)
}

// ListOutboundCallRecords returns up to limit records of calls to outside
// numbers, newest StartedAt first.
func (d *DB) ListOutboundCallRecords(ctx context.Context, limit int) ([]store.CallRecord, error) {
	return d.listCallRecords(ctx, `WHERE e164 <> ''`, limit)
}

func (d *DB) listCallRecords(ctx context.Context, where string, limit int) ([]store.CallRecord, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := d.r.QueryContext(ctx,
		`SELECT `+callRecordCols+` FROM call_records `+where+` ORDER BY started_at DESC, rowid DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("list call records: %w", err)
	}
	defer rows.Close()
	var rs []store.CallRecord
	for rows.Next() {
		var (
			r                        store.CallRecord
			src                      string
			started, answered, ended int64
		)
		if err := rows.Scan(&r.ID, &r.From, &r.To, &src, &started, &answered, &ended,
			&r.Disposition, &r.Cause, &r.CallerMedia, &r.CalleeMedia, &r.MediaInClear,
			&r.E164, &r.Country, &r.Class, &r.EstimatedCost, &r.Trunk, &r.Fraud); err != nil {
			return nil, fmt.Errorf("list call records: %w", err)
		}
		if r.Source, err = parseAddr(src); err != nil {
			return nil, fmt.Errorf("list call records: %s: %w", r.ID, err)
		}
		r.StartedAt, r.AnsweredAt, r.EndedAt = fromNanos(started), fromNanos(answered), fromNanos(ended)
		rs = append(rs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list call records: %w", err)
	}
	return rs, nil
}
