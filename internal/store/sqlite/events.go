package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	"github.com/veilig/veilig/internal/store"
)

// InsertEvents inserts es atomically. The store assigns IDs; Event.ID is
// ignored. An event whose UID is already stored is skipped, so a retried
// batch does not store its events twice.
func (d *conn) InsertEvents(ctx context.Context, es []store.Event) error {
	if len(es) == 0 {
		return nil
	}
	return d.atomic(ctx, func(tx querier) error {
		ins, err := tx.PrepareContext(ctx,
			`INSERT OR IGNORE INTO events (uid, time, type, severity, source, account, message, fields) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
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
			if _, err := ins.ExecContext(ctx, e.UID, nanos(e.Time), e.Type, e.Severity, e.Source, e.Account, e.Message, fields); err != nil {
				return fmt.Errorf("insert event %s: %w", e.Type, err)
			}
		}
		return nil
	})
}

// ListEvents returns the events matching f, newest first (ties by ID,
// highest first).
func (d *conn) ListEvents(ctx context.Context, f store.EventFilter) ([]store.Event, error) {
	var (
		where []string
		args  []any
	)
	if f.Type != "" {
		if prefix, ok := strings.CutSuffix(f.Type, "."); ok {
			// A range instead of LIKE: '.' + 1 is '/', and the range
			// walks the (type, time) index.
			where, args = append(where, "type >= ? AND type < ?"), append(args, prefix+".", prefix+"/")
		} else {
			where, args = append(where, "type = ?"), append(args, f.Type)
		}
	}
	if f.Account != "" {
		where, args = append(where, "account = ?"), append(args, f.Account)
	}
	if f.Source != "" {
		addr, err := netip.ParseAddr(f.Source)
		if err != nil {
			return nil, fmt.Errorf("list events: source %q is not an IP address", f.Source)
		}
		a := addr.Unmap().String()
		withPort := a + ":%"
		if addr.Unmap().Is6() {
			withPort = "[" + a + "]:%"
		}
		where, args = append(where, "(source = ? OR source LIKE ?)"), append(args, a, withPort)
	}
	if f.Severity != "" {
		where, args = append(where, "severity = ?"), append(args, f.Severity)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "time >= ?"), append(args, nanos(f.Since))
	}
	if !f.Until.IsZero() {
		where, args = append(where, "time < ?"), append(args, nanos(f.Until))
	}
	if f.BeforeID > 0 {
		where, args = append(where, "id < ?"), append(args, f.BeforeID)
	}
	q := `SELECT id, uid, time, type, severity, source, account, message, fields FROM events`
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
		if err := rows.Scan(&e.ID, &e.UID, &t, &e.Type, &e.Severity, &e.Source, &e.Account, &e.Message, &fields); err != nil {
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
