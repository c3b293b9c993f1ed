package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/veilig/veilig/internal/store"
)

const auditCols = `seq, time, actor, role, channel, source, action, target, before, after, prev_hash, hash`

// AppendAudit inserts e only when it follows the head: the insert selects
// nothing unless e.Seq is the current maximum plus one, so two writers
// cannot both extend the chain from the same head.
func (d txConn) AppendAudit(ctx context.Context, e store.AuditEntry) error {
	res, err := d.w.ExecContext(ctx, `INSERT INTO audit_log (`+auditCols+`)
		SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
		WHERE (SELECT coalesce(max(seq), 0) FROM audit_log) = ? - 1`,
		e.Seq, nanos(e.Time), e.Actor, e.Role, e.Channel, e.Source, e.Action, e.Target, e.Before, e.After, e.PrevHash, e.Hash, e.Seq)
	if isUniqueViolation(err) {
		return fmt.Errorf("append audit %d: %w", e.Seq, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("append audit %d: %w", e.Seq, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("append audit %d: %w", e.Seq, err)
	} else if n == 0 {
		return fmt.Errorf("append audit %d: not the head's successor: %w", e.Seq, store.ErrConflict)
	}
	return nil
}

// AuditHead returns the newest entry.
func (d *conn) AuditHead(ctx context.Context) (store.AuditEntry, error) {
	row := d.r.QueryRowContext(ctx, `SELECT `+auditCols+` FROM audit_log ORDER BY seq DESC LIMIT 1`)
	e, err := scanAudit(row)
	if errors.Is(err, sql.ErrNoRows) {
		return store.AuditEntry{}, fmt.Errorf("audit head: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.AuditEntry{}, fmt.Errorf("audit head: %w", err)
	}
	return e, nil
}

// ListAudit returns the entries matching f, newest first.
func (d *conn) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	var (
		where []string
		args  []any
	)
	if f.Actor != "" {
		where, args = append(where, "actor = ?"), append(args, f.Actor)
	}
	if f.Action != "" {
		if prefix, ok := strings.CutSuffix(f.Action, "."); ok {
			where, args = append(where, "action >= ? AND action < ?"), append(args, prefix+".", prefix+"/")
		} else {
			where, args = append(where, "action = ?"), append(args, f.Action)
		}
	}
	if f.Target != "" {
		where, args = append(where, "target = ?"), append(args, f.Target)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "time >= ?"), append(args, nanos(f.Since))
	}
	if f.BeforeSeq > 0 {
		where, args = append(where, "seq < ?"), append(args, f.BeforeSeq)
	}
	q := `SELECT ` + auditCols + ` FROM audit_log`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = -1
	}
	q += ` ORDER BY seq DESC LIMIT ?`
	args = append(args, limit)
	return d.queryAudit(ctx, "list audit", q, args...)
}

// ScanAudit returns up to limit entries with Seq > after, in Seq order.
func (d *conn) ScanAudit(ctx context.Context, after int64, limit int) ([]store.AuditEntry, error) {
	if limit <= 0 {
		limit = -1
	}
	return d.queryAudit(ctx, "scan audit", `SELECT `+auditCols+` FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
}

func (d *conn) queryAudit(ctx context.Context, what, q string, args ...any) ([]store.AuditEntry, error) {
	rows, err := d.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []store.AuditEntry
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

func scanAudit(s scanner) (store.AuditEntry, error) {
	var (
		e store.AuditEntry
		t int64
	)
	if err := s.Scan(&e.Seq, &t, &e.Actor, &e.Role, &e.Channel, &e.Source, &e.Action, &e.Target, &e.Before, &e.After, &e.PrevHash, &e.Hash); err != nil {
		return store.AuditEntry{}, err
	}
	e.Time = fromNanos(t)
	return e, nil
}
