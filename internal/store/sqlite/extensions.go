package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/veilig/veilig/internal/store"
)

// Triggers on this table write the change feed (see
// migrations/0005_changes_audit.sql), so none of these methods touch it.

const extensionCols = `number, name, realm, ha1_md5, ha1_sha256, created_at, updated_at, allow_from, class, caller_ids`

// CreateExtension inserts e. A zero CreatedAt becomes now, and a zero
// UpdatedAt becomes CreatedAt.
func (d *conn) CreateExtension(ctx context.Context, e store.Extension) error {
	if e.Number == "" {
		return errors.New("create extension: empty number")
	}
	if e.CreatedAt.IsZero() {
		e.CreatedAt = time.Now()
	}
	if e.UpdatedAt.IsZero() {
		e.UpdatedAt = e.CreatedAt
	}
	_, err := d.w.ExecContext(ctx,
		`INSERT INTO extensions (`+extensionCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Number, e.Name, e.Realm, e.HA1MD5, e.HA1SHA256, nanos(e.CreatedAt), nanos(e.UpdatedAt), prefixesText(e.AllowFrom), e.Class, strings.Join(e.CallerIDs, ","))
	if isUniqueViolation(err) {
		return fmt.Errorf("create extension %s: %w", e.Number, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create extension %s: %w", e.Number, err)
	}
	return nil
}

// UpdateExtension replaces every field of the row with e.Number except
// CreatedAt. A zero UpdatedAt becomes now.
func (d *conn) UpdateExtension(ctx context.Context, e store.Extension) error {
	if e.UpdatedAt.IsZero() {
		e.UpdatedAt = time.Now()
	}
	res, err := d.w.ExecContext(ctx,
		`UPDATE extensions SET name = ?, realm = ?, ha1_md5 = ?, ha1_sha256 = ?, updated_at = ?, allow_from = ?, class = ?, caller_ids = ? WHERE number = ?`,
		e.Name, e.Realm, e.HA1MD5, e.HA1SHA256, nanos(e.UpdatedAt), prefixesText(e.AllowFrom), e.Class, strings.Join(e.CallerIDs, ","), e.Number)
	if err != nil {
		return fmt.Errorf("update extension %s: %w", e.Number, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("update extension %s: %w", e.Number, err)
	} else if n == 0 {
		return fmt.Errorf("update extension %s: %w", e.Number, store.ErrNotFound)
	}
	return nil
}

// Extension returns the extension with the given number.
func (d *conn) Extension(ctx context.Context, number string) (store.Extension, error) {
	row := d.r.QueryRowContext(ctx, `SELECT `+extensionCols+` FROM extensions WHERE number = ?`, number)
	e, err := scanExtension(row)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Extension{}, fmt.Errorf("extension %s: %w", number, store.ErrNotFound)
	}
	if err != nil {
		return store.Extension{}, fmt.Errorf("extension %s: %w", number, err)
	}
	return e, nil
}

// ListExtensions returns all extensions ordered by number.
func (d *conn) ListExtensions(ctx context.Context) ([]store.Extension, error) {
	rows, err := d.r.QueryContext(ctx, `SELECT `+extensionCols+` FROM extensions ORDER BY number`)
	if err != nil {
		return nil, fmt.Errorf("list extensions: %w", err)
	}
	defer rows.Close()
	var es []store.Extension
	for rows.Next() {
		e, err := scanExtension(rows)
		if err != nil {
			return nil, fmt.Errorf("list extensions: %w", err)
		}
		es = append(es, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list extensions: %w", err)
	}
	return es, nil
}

// DeleteExtension removes the extension and its bindings in one
// transaction. The foreign key cascades too; the explicit delete keeps the
// guarantee even on a file whose foreign keys were switched off.
func (d *conn) DeleteExtension(ctx context.Context, number string) error {
	return d.atomic(ctx, func(tx querier) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM bindings WHERE number = ?`, number); err != nil {
			return fmt.Errorf("delete extension %s: bindings: %w", number, err)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM extensions WHERE number = ?`, number)
		if err != nil {
			return fmt.Errorf("delete extension %s: %w", number, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("delete extension %s: %w", number, err)
		} else if n == 0 {
			return fmt.Errorf("delete extension %s: %w", number, store.ErrNotFound)
		}
		return nil
	})
}

type scanner interface{ Scan(dest ...any) error }

func scanExtension(s scanner) (store.Extension, error) {
	var (
		e                store.Extension
		created, updated int64
		allow, cids      string
	)
	if err := s.Scan(&e.Number, &e.Name, &e.Realm, &e.HA1MD5, &e.HA1SHA256, &created, &updated, &allow, &e.Class, &cids); err != nil {
		return store.Extension{}, err
	}
	if cids != "" {
		e.CallerIDs = strings.Split(cids, ",")
	}
	var err error
	if e.AllowFrom, err = parsePrefixes(allow); err != nil {
		return store.Extension{}, err
	}
	e.CreatedAt, e.UpdatedAt = fromNanos(created), fromNanos(updated)
	return e, nil
}
