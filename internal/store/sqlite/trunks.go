package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/veilig/veilig/internal/store"
)

// SaveTrunk upserts a trunk by name.
func (d *conn) SaveTrunk(ctx context.Context, t store.Trunk) error {
	if t.Name == "" {
		return errors.New("save trunk: empty name")
	}
	b, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("save trunk %s: %w", t.Name, err)
	}
	if _, err := d.w.ExecContext(ctx, `INSERT INTO trunks (name, config) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET config = excluded.config`, t.Name, string(b)); err != nil {
		return fmt.Errorf("save trunk %s: %w", t.Name, err)
	}
	return nil
}

// DeleteTrunk removes a trunk.
func (d *conn) DeleteTrunk(ctx context.Context, name string) error {
	return d.deleteOne(ctx, `DELETE FROM trunks WHERE name = ?`, name, "trunk")
}

// Trunk returns the trunk called name.
func (d *conn) Trunk(ctx context.Context, name string) (store.Trunk, error) {
	var s string
	err := d.r.QueryRowContext(ctx, `SELECT config FROM trunks WHERE name = ?`, name).Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Trunk{}, fmt.Errorf("trunk %s: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return store.Trunk{}, fmt.Errorf("trunk %s: %w", name, err)
	}
	var t store.Trunk
	if err := json.Unmarshal([]byte(s), &t); err != nil {
		return store.Trunk{}, fmt.Errorf("trunk %s: corrupt row: %w", name, err)
	}
	return t, nil
}

// ListTrunks returns every trunk by name.
func (d *conn) ListTrunks(ctx context.Context) ([]store.Trunk, error) {
	rows, err := d.r.QueryContext(ctx, `SELECT config FROM trunks ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list trunks: %w", err)
	}
	defer rows.Close()
	var out []store.Trunk
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("list trunks: %w", err)
		}
		var t store.Trunk
		if err := json.Unmarshal([]byte(s), &t); err != nil {
			return nil, fmt.Errorf("list trunks: corrupt row: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}
