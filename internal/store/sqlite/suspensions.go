package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/veilig/veilig/internal/store"
)

// SaveSuspension upserts a suspension.
func (d *conn) SaveSuspension(ctx context.Context, s store.Suspension) error {
	if _, err := d.w.ExecContext(ctx, `INSERT INTO suspensions (extension, reason, since) VALUES (?, ?, ?)
		ON CONFLICT (extension) DO UPDATE SET reason = excluded.reason, since = excluded.since`,
		s.Extension, s.Reason, nanos(s.Since)); err != nil {
		return fmt.Errorf("save suspension %s: %w", s.Extension, err)
	}
	return nil
}

// DeleteSuspension lifts a suspension.
func (d *conn) DeleteSuspension(ctx context.Context, extension string) error {
	return d.deleteOne(ctx, `DELETE FROM suspensions WHERE extension = ?`, extension, "suspension")
}

// Suspension returns the extension's suspension.
func (d *conn) Suspension(ctx context.Context, extension string) (store.Suspension, error) {
	var (
		s     store.Suspension
		since int64
	)
	err := d.r.QueryRowContext(ctx, `SELECT extension, reason, since FROM suspensions WHERE extension = ?`, extension).Scan(&s.Extension, &s.Reason, &since)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Suspension{}, fmt.Errorf("suspension %s: %w", extension, store.ErrNotFound)
	}
	if err != nil {
		return store.Suspension{}, fmt.Errorf("suspension %s: %w", extension, err)
	}
	s.Since = fromNanos(since)
	return s, nil
}

// ListSuspensions returns every suspension by extension.
func (d *conn) ListSuspensions(ctx context.Context) ([]store.Suspension, error) {
	rows, err := d.r.QueryContext(ctx, `SELECT extension, reason, since FROM suspensions ORDER BY extension`)
	if err != nil {
		return nil, fmt.Errorf("list suspensions: %w", err)
	}
	defer rows.Close()
	var out []store.Suspension
	for rows.Next() {
		var (
			s     store.Suspension
			since int64
		)
		if err := rows.Scan(&s.Extension, &s.Reason, &since); err != nil {
			return nil, fmt.Errorf("list suspensions: %w", err)
		}
		s.Since = fromNanos(since)
		out = append(out, s)
	}
	return out, rows.Err()
}
