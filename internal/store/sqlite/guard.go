package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/veilig/veilig/internal/store"
)

// SaveBan upserts a ban by address.
func (d *conn) SaveBan(ctx context.Context, b store.Ban) error {
	cause, err := json.Marshal(b.Cause)
	if err != nil {
		return fmt.Errorf("save ban %s: %w", banKey(b), err)
	}
	if b.Cause == nil {
		cause = []byte("[]")
	}
	_, err = d.w.ExecContext(ctx, `INSERT INTO bans (addr, rule, reason, cause, start, end, level) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (addr) DO UPDATE SET rule = excluded.rule, reason = excluded.reason, cause = excluded.cause,
		start = excluded.start, end = excluded.end, level = excluded.level`,
		banKey(b), b.Rule, b.Reason, string(cause), nanos(b.Start), nanos(b.End), b.Level)
	if err != nil {
		return fmt.Errorf("save ban %s: %w", b.Addr, err)
	}
	return nil
}

// DeleteBan lifts a ban.
func (d *conn) DeleteBan(ctx context.Context, addr netip.Addr) error {
	return d.deleteOne(ctx, `DELETE FROM bans WHERE addr = ?`, addr.Unmap().String(), "ban")
}

// DeleteNetBan lifts the ban of a network.
func (d *conn) DeleteNetBan(ctx context.Context, p netip.Prefix) error {
	return d.deleteOne(ctx, `DELETE FROM bans WHERE addr = ?`, p.Masked().String(), "ban")
}

// banKey is a ban's row key: the address, or the masked network in CIDR
// form (so the two never collide).
func banKey(b store.Ban) string {
	if b.Net.IsValid() {
		return b.Net.Masked().String()
	}
	return b.Addr.Unmap().String()
}

const banCols = `addr, rule, reason, cause, start, end, level`

// Ban returns the ban on addr in force at now.
func (d *conn) Ban(ctx context.Context, addr netip.Addr, now time.Time) (store.Ban, error) {
	row := d.r.QueryRowContext(ctx, `SELECT `+banCols+` FROM bans WHERE addr = ? AND end > ?`, addr.Unmap().String(), nanos(now))
	b, err := scanBan(row)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Ban{}, fmt.Errorf("ban %s: %w", addr, store.ErrNotFound)
	}
	if err != nil {
		return store.Ban{}, fmt.Errorf("ban %s: %w", addr, err)
	}
	return b, nil
}

// NetBan returns the ban of network p in force at now.
func (d *conn) NetBan(ctx context.Context, p netip.Prefix, now time.Time) (store.Ban, error) {
	row := d.r.QueryRowContext(ctx, `SELECT `+banCols+` FROM bans WHERE addr = ? AND end > ?`, p.Masked().String(), nanos(now))
	b, err := scanBan(row)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Ban{}, fmt.Errorf("ban %s: %w", p, store.ErrNotFound)
	}
	if err != nil {
		return store.Ban{}, fmt.Errorf("ban %s: %w", p, err)
	}
	return b, nil
}

// ListBans returns the bans in force at now, soonest to end first. Expired
// rows stay until the retention job purges them (PurgeExpired).
func (d *conn) ListBans(ctx context.Context, now time.Time) ([]store.Ban, error) {
	rows, err := d.r.QueryContext(ctx, `SELECT `+banCols+` FROM bans WHERE end > ? ORDER BY end`, nanos(now))
	if err != nil {
		return nil, fmt.Errorf("list bans: %w", err)
	}
	defer rows.Close()
	var out []store.Ban
	for rows.Next() {
		b, err := scanBan(rows)
		if err != nil {
			return nil, fmt.Errorf("list bans: %w", err)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

func scanBan(s scanner) (store.Ban, error) {
	var (
		b           store.Ban
		addr, cause string
		start, end  int64
	)
	if err := s.Scan(&addr, &b.Rule, &b.Reason, &cause, &start, &end, &b.Level); err != nil {
		return store.Ban{}, err
	}
	var err error
	if strings.Contains(addr, "/") {
		if b.Net, err = netip.ParsePrefix(addr); err != nil {
			return store.Ban{}, fmt.Errorf("corrupt network %q: %w", addr, err)
		}
	} else if b.Addr, err = netip.ParseAddr(addr); err != nil {
		return store.Ban{}, fmt.Errorf("corrupt address %q: %w", addr, err)
	}
	if err := json.Unmarshal([]byte(cause), &b.Cause); err != nil {
		return store.Ban{}, fmt.Errorf("ban %s: corrupt cause: %w", addr, err)
	}
	b.Start, b.End = fromNanos(start), fromNanos(end)
	return b, nil
}

// SaveLock upserts an account lock, or a source lock when l.Source is set.
func (d *conn) SaveLock(ctx context.Context, l store.Lock) error {
	var err error
	if l.Source.IsValid() {
		_, err = d.w.ExecContext(ctx, `INSERT INTO source_locks (account, source, until, level, reason) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (account, source) DO UPDATE SET until = excluded.until, level = excluded.level, reason = excluded.reason`,
			l.Account, l.Source.Unmap().String(), nanos(l.Until), l.Level, l.Reason)
	} else {
		_, err = d.w.ExecContext(ctx, `INSERT INTO locks (account, until, level, reason) VALUES (?, ?, ?, ?)
			ON CONFLICT (account) DO UPDATE SET until = excluded.until, level = excluded.level, reason = excluded.reason`,
			l.Account, nanos(l.Until), l.Level, l.Reason)
	}
	if err != nil {
		return fmt.Errorf("save lock %s: %w", l.Account, err)
	}
	return nil
}

// SaveGuard saves bans and locks in one transaction, so a burst of
// security decisions is durable with one commit.
func (d *conn) SaveGuard(ctx context.Context, bans []store.Ban, locks []store.Lock) error {
	if len(bans) == 0 && len(locks) == 0 {
		return nil
	}
	err := d.atomic(ctx, func(q querier) error {
		c := &conn{r: q, w: q}
		for _, b := range bans {
			if err := c.SaveBan(ctx, b); err != nil {
				return err
			}
		}
		for _, l := range locks {
			if err := c.SaveLock(ctx, l); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save guard: %w", err)
	}
	return nil
}

// DeleteLock unlocks an account: its lock and its source locks.
func (d *conn) DeleteLock(ctx context.Context, account string) error {
	var n int64
	err := d.atomic(ctx, func(q querier) error {
		for _, stmt := range []string{`DELETE FROM locks WHERE account = ?`, `DELETE FROM source_locks WHERE account = ?`} {
			res, err := q.ExecContext(ctx, stmt, account)
			if err != nil {
				return err
			}
			k, err := res.RowsAffected()
			if err != nil {
				return err
			}
			n += k
		}
		if n == 0 {
			return store.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete lock %s: %w", account, err)
	}
	return nil
}

// lockCols reads both tables alike: an account lock has no source.
const lockCols = `account, '', until, level, reason`

// Lock returns the account-wide lock in force at now (source locks are
// in ListLocks).
func (d *conn) Lock(ctx context.Context, account string, now time.Time) (store.Lock, error) {
	row := d.r.QueryRowContext(ctx, `SELECT `+lockCols+` FROM locks WHERE account = ? AND until > ?`, account, nanos(now))
	l, err := scanLock(row)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Lock{}, fmt.Errorf("lock %s: %w", account, store.ErrNotFound)
	}
	if err != nil {
		return store.Lock{}, fmt.Errorf("lock %s: %w", account, err)
	}
	return l, nil
}

// ListLocks returns the locks in force at now, by account, each account's
// own lock before its source locks.
func (d *conn) ListLocks(ctx context.Context, now time.Time) ([]store.Lock, error) {
	rows, err := d.r.QueryContext(ctx, `SELECT `+lockCols+` FROM locks WHERE until > ?
		UNION ALL SELECT account, source, until, level, reason FROM source_locks WHERE until > ?
		ORDER BY 1, 2`, nanos(now), nanos(now))
	if err != nil {
		return nil, fmt.Errorf("list locks: %w", err)
	}
	defer rows.Close()
	var out []store.Lock
	for rows.Next() {
		l, err := scanLock(rows)
		if err != nil {
			return nil, fmt.Errorf("list locks: %w", err)
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

func scanLock(s scanner) (store.Lock, error) {
	var (
		l     store.Lock
		src   string
		until int64
	)
	if err := s.Scan(&l.Account, &src, &until, &l.Level, &l.Reason); err != nil {
		return store.Lock{}, err
	}
	if src != "" {
		a, err := netip.ParseAddr(src)
		if err != nil {
			return store.Lock{}, fmt.Errorf("%s: corrupt source %q: %w", l.Account, src, err)
		}
		l.Source = a
	}
	l.Until = fromNanos(until)
	return l, nil
}

func (d *conn) deleteOne(ctx context.Context, q, key, what string) error {
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
