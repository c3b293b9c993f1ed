// Package sqlite implements store.Store on an embedded SQLite file through
// modernc.org/sqlite, so a single node needs no cgo and no database server.
//
// The file is shared by several processes at once (the server and CLI
// commands such as "veilig ext add"), so it runs in WAL mode with a busy
// timeout: readers never block the writer, and writers from different
// processes queue for up to the timeout instead of failing with SQLITE_BUSY.
// Within a process, writes go through a single connection (SQLite allows one
// writer at a time anyway, and queueing in the pool is cheaper than spinning
// on the file lock), while reads use a separate pool.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/veilig/veilig/internal/store"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// BusyTimeout is how long a statement waits for another connection or
// process to release the database lock before failing.
const BusyTimeout = 5 * time.Second

// DB is a store.Store backed by one SQLite file.
type DB struct {
	*conn
	w *sql.DB // exactly one connection; every write goes here
	r *sql.DB // read-only pool
}

var (
	_ store.Store = (*DB)(nil)
	_ store.Tx    = txConn{}
)

// querier is what both a pool and a transaction run statements on.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
}

// conn holds every statement of the store. On the DB, r is the read pool
// and w the single writer; inside Update both are the transaction, so a
// read there sees the transaction's own writes.
type conn struct {
	r, w querier
	// begin starts a transaction for a multi-statement write; nil inside
	// Update, where the statements join the open transaction.
	begin func(ctx context.Context) (*sql.Tx, error)
}

// txConn is a conn inside Update: it alone can append to the audit log.
type txConn struct{ *conn }

// atomic runs fn on one transaction: the open one inside Update, a new one
// otherwise.
func (d *conn) atomic(ctx context.Context, fn func(q querier) error) error {
	if d.begin == nil {
		return fn(d.w)
	}
	tx, err := d.begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// Update runs fn in one IMMEDIATE transaction on the writer.
func (d *DB) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	tx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if err := fn(txConn{&conn{r: tx, w: tx}}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Open opens (creating if needed, mode 0600) the database at path and brings
// its schema up to date. Several processes may open the same path at once.
func Open(ctx context.Context, path string) (*DB, error) {
	if path == "" || path == ":memory:" || strings.ContainsAny(path, "?") {
		// An in-memory database cannot be shared by the two pools, and the
		// driver reads everything after '?' as connection parameters.
		return nil, fmt.Errorf("open sqlite store: unusable path %q", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	// Create the file ourselves so its mode is 0600 before SQLite writes
	// anything; SQLite gives the -wal and -shm files the same mode.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}

	w, err := sql.Open("sqlite", dsn(abs, false))
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}

	// The read pool is opened only after the writer has switched the file
	// to WAL and created the schema.
	r, err := sql.Open("sqlite", dsn(abs, true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	d := &DB{w: w, r: r}
	d.conn = &conn{r: r, w: w, begin: func(ctx context.Context) (*sql.Tx, error) { return w.BeginTx(ctx, nil) }}
	return d, nil
}

// dsn builds the driver connection string. Writer transactions begin
// IMMEDIATE so that they take the write lock up front, where the busy
// timeout applies; a deferred transaction that upgrades later can fail with
// SQLITE_BUSY at once when another process holds the lock.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", BusyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Set("_txlock", "immediate")
	}
	return path + "?" + q.Encode()
}

// Close releases both pools. It lets SQLite refresh its query planner
// statistics first, as the SQLite docs recommend on close.
func (d *DB) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), BusyTimeout)
	defer cancel()
	_, optErr := d.w.ExecContext(ctx, `PRAGMA optimize`)
	if optErr != nil {
		optErr = fmt.Errorf("optimize: %w", optErr)
	}
	return errors.Join(optErr, d.r.Close(), d.w.Close())
}
