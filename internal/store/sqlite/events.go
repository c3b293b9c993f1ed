package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/veilig/veilig/internal/store"
)

// InsertEvents inserts es atomically. The store assigns IDs; Event.ID is
// ignored.
func (d *DB) InsertEvents(ctx context.Context, es []store.Event) error {
	if len(es) == 0 {
		return nil
	}
	tx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("insert events: %w", err)
	}
	defer tx.Rollback()
	ins, err := tx.PrepareContext(ctx,
		`INSERT INTO events (time, type, severity, source, account, message, fields) VALUES (?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("insert events: prepare: %w", err)
	}
	defer ins.Close()
	for _, e := range es {
		fields := ""
		if len(e.Fields) > 0 {
			b, err := json.Marshal(e.Fields)
			if err != nil {
				return fmt.Errorf("insert events: encode fields: %w", err)
			}
			fields = string(b)
		}
		if _, err := ins.ExecContext(ctx, nanos(e.Time), e.Type, e.Severity, e.Source, e.Account, e.Message, fields); err != nil {
			return fmt.Errorf("insert event %s: %w", e.Type, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("insert events: commit: %w", err)
	}
	return nil
}

// ListEvents returns the events matching f, newest first (ties by ID,
// highest first). Since is inclusive.
func (d *DB) ListEvents(ctx context.Context, f store.EventFilter) ([]store.Event, error) {
	var (
		where []string
		args  []any
	)
	if f.Type != "" {
		where, args = append(where, "type = ?"), append(args, f.Type)
	}
	if f.Account != "" {
		where, args = append(where, "account = ?"), append(args, f.Account)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "time >= ?"), append(args, nanos(f.Since))
	}
	q := `SELECT id, time, type, severity, source, account, message, fields FROM events`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	q += ` ORDER BY time DESC, id DESC LIMIT ?`
	args = append(args, limit)

	rows, err := d.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	var es []store.Event
	for rows.Next() {
		var (
			e      store.Event
			t      int64
			fields string
		)
		if err := rows.Scan(&e.ID, &t, &e.Type, &e.Severity, &e.Source, &e.Account, &e.Message, &fields); err != nil {
			return nil, fmt.Errorf("list events: %w", err)
		}
		e.Time = fromNanos(t)
		if fields != "" {
			if err := json.Unmarshal([]byte(fields), &e.Fields); err != nil {
				return nil, fmt.Errorf("list events: event %d: corrupt fields: %w", e.ID, err)
			}
		}
		es = append(es, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	return es, nil
}
