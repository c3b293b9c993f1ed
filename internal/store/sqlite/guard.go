package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/veilig/veilig/internal/store"
)

// execer is what the save statements need: the writer or a transaction.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// SaveBan upserts a ban by address.
func (d *DB) SaveBan(ctx context.Context, b store.Ban) error { return saveBan(ctx, d.w, b) }

func saveBan(ctx context.Context, x execer, b store.Ban) error {
	cause, err := json.Marshal(b.Cause)
	if err != nil {
		return fmt.Errorf("save ban %s: %w", b.Addr, err)
	}
	if b.Cause == nil {
		cause = []byte("[]")
	}
	_, err = x.ExecContext(ctx, `INSERT INTO bans (addr, rule, reason, cause, start, end, level) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (addr) DO UPDATE SET rule = excluded.rule, reason = excluded.reason, cause = excluded.cause,
		start = excluded.start, end = excluded.end, level = excluded.level`,
		b.Addr.Unmap().String(), b.Rule, b.Reason, string(cause), nanos(b.Start), nanos(b.End), b.Level)
	if err != nil {
		return fmt.Errorf("save ban %s: %w", b.Addr, err)
	}
	return nil
}

// DeleteBan lifts a ban.
func (d *DB) DeleteBan(ctx context.Context, addr netip.Addr) error {
	return d.deleteOne(ctx, `DELETE FROM bans WHERE addr = ?`, addr.Unmap().String(), "ban")
}

// ListBans returns the bans in force at now, soonest to end first, and
// deletes the expired ones.
func (d *DB) ListBans(ctx context.Context, now time.Time) ([]store.Ban, error) {
	rows, err := d.r.QueryContext(ctx, `SELECT addr, rule, reason, cause, start, end, level FROM bans WHERE end > ? ORDER BY end`, nanos(now))
	if err != nil {
		return nil, fmt.Errorf("list bans: %w", err)
	}
	defer rows.Close()
	var out []store.Ban
	for rows.Next() {
		var (
			b           store.Ban
			addr, cause string
			start, end  int64
		)
		if err := rows.Scan(&addr, &b.Rule, &b.Reason, &cause, &start, &end, &b.Level); err != nil {
			return nil, fmt.Errorf("list bans: %w", err)
		}
		if b.Addr, err = netip.ParseAddr(addr); err != nil {
			return nil, fmt.Errorf("list bans: corrupt address %q: %w", addr, err)
		}
		_ = json.Unmarshal([]byte(cause), &b.Cause)
		b.Start, b.End = fromNanos(start), fromNanos(end)
		out = append(out, b)
	}
	return out, rows.Err()
}

// SaveLock upserts an account lock, or a source lock when l.Source is set.
func (d *DB) SaveLock(ctx context.Context, l store.Lock) error { return saveLock(ctx, d.w, l) }

func saveLock(ctx context.Context, x execer, l store.Lock) error {
	var err error
	if l.Source.IsValid() {
		_, err = x.ExecContext(ctx, `INSERT INTO source_locks (account, source, until, level, reason) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (account, source) DO UPDATE SET until = excluded.until, level = excluded.level, reason = excluded.reason`,
			l.Account, l.Source.Unmap().String(), nanos(l.Until), l.Level, l.Reason)
	} else {
		_, err = x.ExecContext(ctx, `INSERT INTO locks (account, until, level, reason) VALUES (?, ?, ?, ?)
			ON CONFLICT (account) DO UPDATE SET until = excluded.until, level = excluded.level, reason = excluded.reason`,
			l.Account, nanos(l.Until), l.Level, l.Reason)
	}
	if err != nil {
		return fmt.Errorf("save lock %s: %w", l.Account, err)
	}
	return nil
}

// SaveGuard saves bans and locks in one transaction.
func (d *DB) SaveGuard(ctx context.Context, bans []store.Ban, locks []store.Lock) error {
	if len(bans) == 0 && len(locks) == 0 {
		return nil
	}
	tx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("save guard: %w", err)
	}
	defer tx.Rollback()
	for _, b := range bans {
		if err := saveBan(ctx, tx, b); err != nil {
			return err
		}
	}
	for _, l := range locks {
		if err := saveLock(ctx, tx, l); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("save guard: commit: %w", err)
	}
	return nil
}

// DeleteLock unlocks an account: its lock and its source locks.
func (d *DB) DeleteLock(ctx context.Context, account string) error {
	tx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("delete lock %s: %w", account, err)
	}
	defer tx.Rollback()
	var n int64
	for _, q := range []string{`DELETE FROM locks WHERE account = ?`, `DELETE FROM source_locks WHERE account = ?`} {
		res, err := tx.ExecContext(ctx, q, account)
		if err != nil {
			return fmt.Errorf("delete lock %s: %w", account, err)
		}
		k, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("delete lock %s: %w", account, err)
		}
		n += k
	}
	if n == 0 {
		return fmt.Errorf("delete lock %s: %w", account, store.ErrNotFound)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("delete lock %s: commit: %w", account, err)
	}
	return nil
}

// ListLocks returns the locks in force at now.
func (d *DB) ListLocks(ctx context.Context, now time.Time) ([]store.Lock, error) {
	rows, err := d.r.QueryContext(ctx, `SELECT account, '', until, level, reason FROM locks WHERE until > ?
		UNION ALL SELECT account, source, until, level, reason FROM source_locks WHERE until > ?
		ORDER BY 1, 2`, nanos(now), nanos(now))
	if err != nil {
		return nil, fmt.Errorf("list locks: %w", err)
	}
	defer rows.Close()
	var out []store.Lock
	for rows.Next() {
		var (
			l     store.Lock
			src   string
			until int64
		)
		if err := rows.Scan(&l.Account, &src, &until, &l.Level, &l.Reason); err != nil {
			return nil, fmt.Errorf("list locks: %w", err)
		}
		if src != "" {
			a, err := netip.ParseAddr(src)
			if err != nil {
				return nil, fmt.Errorf("list locks: %s source %q: %w", l.Account, src, err)
			}
			l.Source = a
		}
		l.Until = fromNanos(until)
		out = append(out, l)
	}
	return out, rows.Err()
}

// GuardVersion reports the bans-and-locks change counter.
func (d *DB) GuardVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := d.r.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = 'guard'`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read guard version: %w", err)
	}
	return v, nil
}

func (d *DB) deleteOne(ctx context.Context, q, key, what string) error {
	res, err := d.w.ExecContext(ctx, q, key)
	if err != nil {
		return fmt.Errorf("delete %s %s: %w", what, key, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete %s %s: %w", what, key, err)
	} else if n == 0 {
		return fmt.Errorf("delete %s %s: %w", what, key, store.ErrNotFound)
	}
	return nil
}

func prefixesText(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func parsePrefixes(s string) ([]netip.Prefix, error) {
	if s == "" {
		return nil, nil
	}
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return nil, fmt.Errorf("corrupt allow_from %q: %w", s, err)
		}
		out = append(out, p)
	}
	return out, nil
}
