package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/veilig/veilig/internal/store"
)

// upsertBinding relies on the foreign key to reject rows whose extension is
// gone; SaveBindings skips those. (A WHERE EXISTS guard in the statement
// does the same but made 1000 upserts take 12 ms instead of 8.)
const upsertBinding = `
INSERT INTO bindings (number, contact, source, transport, conn_id, call_id, cseq, user_agent, expires, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (number, contact) DO UPDATE SET
	source     = excluded.source,
	transport  = excluded.transport,
	conn_id    = excluded.conn_id,
	call_id    = excluded.call_id,
	cseq       = excluded.cseq,
	user_agent = excluded.user_agent,
	expires    = excluded.expires,
	updated_at = excluded.updated_at`

const bindingCols = `number, contact, source, transport, conn_id, call_id, cseq, user_agent, expires, updated_at`

// SaveBindings upserts the live bindings in bs, deletes those whose Expires
// is zero or past, and sweeps every other expired row, in one transaction.
// A zero UpdatedAt becomes now.
func (d *conn) SaveBindings(ctx context.Context, bs []store.Binding) error {
	if len(bs) == 0 {
		return nil
	}
	err := d.atomic(ctx, func(tx querier) error {
		up, err := tx.PrepareContext(ctx, upsertBinding)
		if err != nil {
			return fmt.Errorf("prepare upsert: %w", err)
		}
		defer up.Close()
		del, err := tx.PrepareContext(ctx, `DELETE FROM bindings WHERE number = ? AND contact = ?`)
		if err != nil {
			return fmt.Errorf("prepare delete: %w", err)
		}
		defer del.Close()

		now := time.Now()
		for _, b := range bs {
			if b.Expires.IsZero() || !b.Expires.After(now) {
				if _, err := del.ExecContext(ctx, b.Number, b.Contact); err != nil {
					return fmt.Errorf("delete %s %s: %w", b.Number, b.Contact, err)
				}
				continue
			}
			updated := b.UpdatedAt
			if updated.IsZero() {
				updated = now
			}
			_, err := up.ExecContext(ctx, b.Number, b.Contact, addrText(b.Source), b.Transport,
				b.ConnID, b.CallID, int64(b.CSeq), b.UserAgent, nanos(b.Expires), nanos(updated))
			if isForeignKeyViolation(err) {
				// The extension is gone: the batcher flushed a REGISTER that
				// raced a "veilig ext rm". SQLite undid only this statement, so
				// the rest of the batch carries on.
				continue
			}
			if err != nil {
				return fmt.Errorf("upsert %s %s: %w", b.Number, b.Contact, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM bindings WHERE expires <= ?`, nanos(now)); err != nil {
			return fmt.Errorf("sweep expired: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save bindings: %w", err)
	}
	return nil
}

// DeleteBinding removes one binding.
func (d *conn) DeleteBinding(ctx context.Context, number, contact string) error {
	res, err := d.w.ExecContext(ctx, `DELETE FROM bindings WHERE number = ? AND contact = ?`, number, contact)
	if err != nil {
		return fmt.Errorf("delete binding %s %s: %w", number, contact, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete binding %s %s: %w", number, contact, err)
	} else if n == 0 {
		return fmt.Errorf("delete binding %s %s: %w", number, contact, store.ErrNotFound)
	}
	return nil
}

// LoadBindings returns the bindings that expire after now, ordered by
// number and contact.
func (d *conn) LoadBindings(ctx context.Context, now time.Time) ([]store.Binding, error) {
	rows, err := d.r.QueryContext(ctx,
		`SELECT `+bindingCols+` FROM bindings WHERE expires > ? ORDER BY number, contact`, nanos(now))
	if err != nil {
		return nil, fmt.Errorf("load bindings: %w", err)
	}
	defer rows.Close()
	var bs []store.Binding
	for rows.Next() {
		var (
			b                store.Binding
			src              string
			cseq             int64
			expires, updated int64
		)
		if err := rows.Scan(&b.Number, &b.Contact, &src, &b.Transport, &b.ConnID, &b.CallID,
			&cseq, &b.UserAgent, &expires, &updated); err != nil {
			return nil, fmt.Errorf("load bindings: %w", err)
		}
		if b.Source, err = parseAddr(src); err != nil {
			return nil, fmt.Errorf("load bindings: %s %s: %w", b.Number, b.Contact, err)
		}
		if cseq < 0 || cseq > 1<<32-1 {
			return nil, fmt.Errorf("load bindings: %s %s: cseq %d out of range", b.Number, b.Contact, cseq)
		}
		b.CSeq = uint32(cseq)
		b.Expires, b.UpdatedAt = fromNanos(expires), fromNanos(updated)
		bs = append(bs, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load bindings: %w", err)
	}
	return bs, nil
}
