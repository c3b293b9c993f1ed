package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/veilig/veilig/internal/store"
)

// SaveBan upserts a ban by address.
func (d *DB) SaveBan(ctx context.Context, b store.Ban) error {
	cause, err := json.Marshal(b.Cause)
	if err != nil {
		return fmt.Errorf("save ban %s: %w", b.Addr, err)
	}
	if b.Cause == nil {
		cause = []byte("[]")
	}
	_, err = d.w.ExecContext(ctx, `INSERT INTO bans (addr, rule, reason, cause, start, end, level) VALUES (?, ?, ?, ?, ?, ?, ?)
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

// SaveLock upserts an account lock.
func (d *DB) SaveLock(ctx context.Context, l store.Lock) error {
	_, err := d.w.ExecContext(ctx, `INSERT INTO locks (account, until, level, reason) VALUES (?, ?, ?, ?)
		ON CONFLICT (account) DO UPDATE SET until = excluded.until, level = excluded.level, reason = excluded.reason`,
		l.Account, nanos(l.Until), l.Level, l.Reason)
	if err != nil {
		return fmt.Errorf("save lock %s: %w", l.Account, err)
	}
	return nil
}

// DeleteLock unlocks an account.
func (d *DB) DeleteLock(ctx context.Context, account string) error {
	return d.deleteOne(ctx, `DELETE FROM locks WHERE account = ?`, account, "lock")
}

// ListLocks returns the locks in force at now.
func (d *DB) ListLocks(ctx context.Context, now time.Time) ([]store.Lock, error) {
	rows, err := d.r.QueryContext(ctx, `SELECT account, until, level, reason FROM locks WHERE until > ? ORDER BY account`, nanos(now))
	if err != nil {
		return nil, fmt.Errorf("list locks: %w", err)
	}
	defer rows.Close()
	var out []store.Lock
	for rows.Next() {
		var (
			l     store.Lock
			until int64
		)
		if err := rows.Scan(&l.Account, &until, &l.Level, &l.Reason); err != nil {
			return nil, fmt.Errorf("list locks: %w", err)
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
