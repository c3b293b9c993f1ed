package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Snapshot writes a consistent copy of the whole database to path, a file
// that must not exist yet, while other connections and processes (the
// running server) go on reading and writing.
//
// It uses VACUUM INTO: one read transaction, so the copy is the database as
// it stood when the statement began, and in WAL mode it neither blocks nor
// waits for writers. The copy is compact (free pages dropped), is a single
// file without -wal or -shm, and gets mode 0600 because it holds the same
// sealed secrets as the original.
func (d *DB) Snapshot(ctx context.Context, path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if _, err := os.Lstat(abs); err == nil {
		return fmt.Errorf("snapshot %s: %w", abs, fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("snapshot %s: %w", abs, err)
	}
	// Create the file first so SQLite writes into a 0600 file; VACUUM INTO
	// accepts an existing empty file.
	f, err := os.OpenFile(abs, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	// The writer connection runs it: the read pool is query_only, which
	// refuses VACUUM. VACUUM INTO takes no write lock on this database.
	if _, err := d.w.ExecContext(ctx, `VACUUM INTO ?`, abs); err != nil {
		os.Remove(abs)
		return fmt.Errorf("snapshot %s: %w", abs, err)
	}
	return nil
}

// Check runs SQLite's integrity check, for a database that was copied or
// restored: it returns nil only when SQLite reports "ok".
func (d *DB) Check(ctx context.Context) error {
	rows, err := d.r.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return fmt.Errorf("integrity check: %w", err)
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("integrity check: %d problem(s), first: %s", len(problems), problems[0])
	}
	return nil
}
