package sqlite

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/veilig/veilig/internal/store"
)

const callRecordCols = `id, from_party, to_party, source, started_at, answered_at, ended_at,
	disposition, cause, caller_media, callee_media, media_in_clear,
	e164, country, class, estimated_cost, trunk, fraud`

// InsertCallRecords inserts rs atomically: a duplicate ID fails the whole
// batch with store.ErrExists.
func (d *conn) InsertCallRecords(ctx context.Context, rs []store.CallRecord) error {
	if len(rs) == 0 {
		return nil
	}
	for _, r := range rs {
		if r.ID == "" {
			return errors.New("insert call records: empty id")
		}
	}
	return d.atomic(ctx, func(tx querier) error {
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
		return nil
	})
}

// ListCallRecords returns the records matching f, newest StartedAt first
// (ties in insertion order, newest first).
func (d *conn) ListCallRecords(ctx context.Context, f store.RecordFilter) ([]store.CallRecord, error) {
	var (
		where []string
		args  []any
	)
	if f.Party != "" {
		where, args = append(where, "(from_party = ? OR to_party = ?)"), append(args, f.Party, f.Party)
	}
	if f.Disposition != "" {
		where, args = append(where, "disposition = ?"), append(args, f.Disposition)
	}
	if f.Outbound {
		where = append(where, "e164 <> ''")
	}
	if !f.Since.IsZero() {
		where, args = append(where, "started_at >= ?"), append(args, nanos(f.Since))
	}
	if !f.Until.IsZero() {
		where, args = append(where, "started_at < ?"), append(args, nanos(f.Until))
	}
	q := `SELECT ` + callRecordCols + ` FROM call_records`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	q += ` ORDER BY started_at DESC, rowid DESC LIMIT ? OFFSET ?`
	args = append(args, limit, max(f.Offset, 0))
	rows, err := d.r.QueryContext(ctx, q, args...)
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
