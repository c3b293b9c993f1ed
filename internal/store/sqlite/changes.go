package sqlite

import (
	"context"
	"fmt"

	"github.com/veilig/veilig/internal/store"
)

// Changes returns up to limit changes with Seq > after, oldest first.
func (d *conn) Changes(ctx context.Context, after int64, limit int) ([]store.Change, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := d.r.QueryContext(ctx, `SELECT seq, topic, key, at FROM changes WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("changes after %d: %w", after, err)
	}
	defer rows.Close()
	var out []store.Change
	for rows.Next() {
		var (
			c  store.Change
			at int64
		)
		if err := rows.Scan(&c.Seq, &c.Topic, &c.Key, &at); err != nil {
			return nil, fmt.Errorf("changes after %d: %w", after, err)
		}
		c.At = fromNanos(at)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("changes after %d: %w", after, err)
	}
	return out, nil
}

// LastChange returns the newest change's Seq (0 when there is none). The
// sequence never goes back, even after old changes are purged
// (AUTOINCREMENT keeps its high-water mark in sqlite_sequence).
func (d *conn) LastChange(ctx context.Context) (int64, error) {
	var seq int64
	err := d.r.QueryRowContext(ctx, `SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0)`).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("last change: %w", err)
	}
	return seq, nil
}
