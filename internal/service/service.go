package service

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"strconv"
	"time"

	"github.com/veilig/veilig/internal/config"
	"github.com/veilig/veilig/internal/datakey"
	"github.com/veilig/veilig/internal/events"
	"github.com/veilig/veilig/internal/policy"
	"github.com/veilig/veilig/internal/store"
)

// Explainer says what refuses a source or account, from the running
// defences' memory (rate limits and fresh bans that the store may not
// show yet).
type Explainer interface {
	Explain(addr netip.Addr, account string, now time.Time) []policy.Reason
}

// Deps are what a Service works with. Only Store, Key and Config are
// required; the live parts exist only inside the server.
type Deps struct {
	Store  store.Store
	Key    *datakey.Key
	Config *config.Config
	Events events.Emitter // admin.change events; nil: none
	// Changed waits until the subsystems that mirror stored rows have
	// applied a committed change (the change feed's Sync); nil in a
	// process without them.
	Changed func(ctx context.Context)
	// Live parts of a running server; nil outside it.
	Explainer Explainer
	Locator   Locator
	Conns     ConnChecker
	Calls     CallControl
	Log       *slog.Logger
	Now       func() time.Time
}

// Service carries out operations.
type Service struct {
	d        Deps
	auditKey []byte
}

// New makes a Service.
func New(d Deps) *Service {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Events == nil {
		d.Events = events.Discard{}
	}
	return &Service{d: d, auditKey: d.Key.Derive("audit-redaction")}
}

// Live reports whether this Service runs inside the server.
func (s *Service) Live() bool { return s.d.Explainer != nil }

func (s *Service) realm() string { return s.d.Config.SIP.Domain }

// change runs fn in one transaction with the audit entry that records it.
// fn returns the target's state before and after (any JSON-encodable
// value, with secrets already redacted; nil for "did not exist" or
// "gone"). After the commit the running subsystems have applied the
// change before change returns, so the caller's next request meets it.
func (s *Service) change(ctx context.Context, a Actor, action, target string, fn func(tx store.Tx) (before, after any, err error)) error {
	return s.changes(ctx, a, func(tx store.Tx, record recordFunc) error {
		before, after, err := fn(tx)
		if err != nil {
			return err
		}
		return record(action, target, before, after)
	})
}

// recordFunc appends one audit entry inside the transaction.
type recordFunc func(action, target string, before, after any) error

// changes is change for several targets in one transaction: fn calls
// record once per target it changed.
func (s *Service) changes(ctx context.Context, a Actor, fn func(tx store.Tx, record recordFunc) error) error {
	var entries []store.AuditEntry
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		entries = entries[:0]
		err = s.d.Store.Update(ctx, func(tx store.Tx) error {
			head, err := tx.AuditHead(ctx)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			return fn(tx, func(action, target string, before, after any) error {
				e, err := s.auditEntry(head, a, action, target, before, after)
				if err != nil {
					return err
				}
				if err := tx.AppendAudit(ctx, e); err != nil {
					return err
				}
				head = e
				entries = append(entries, e)
				return nil
			})
		})
		// Only a lost race for the audit chain's head is retried (another
		// process appended first); the operation's own refusals are final.
		var se *Error
		if !errors.Is(err, store.ErrConflict) || errors.As(err, &se) {
			break
		}
	}
	if err != nil {
		return storeErr("change", err)
	}
	if s.d.Changed != nil {
		s.d.Changed(ctx)
	}
	for _, e := range entries {
		s.d.Events.Emit(events.New(events.AdminChange, netip.AddrPort{}, "", a.Name+" "+e.Action+" "+e.Target,
			"action", e.Action, "target", e.Target, "actor", a.Name, "channel", string(a.Channel), "audit_seq", itoa64(e.Seq)))
	}
	return nil
}

func (s *Service) auditEntry(head store.AuditEntry, a Actor, action, target string, before, after any) (store.AuditEntry, error) {
	var err error
	e := store.AuditEntry{
		Seq: head.Seq + 1, Time: s.d.Now().UTC(), Actor: a.Name, Role: a.Role, Channel: string(a.Channel),
		Source: a.Source, Action: action, Target: target, PrevHash: head.Hash,
	}
	if e.Before, err = encodeState(before); err != nil {
		return store.AuditEntry{}, err
	}
	if e.After, err = encodeState(after); err != nil {
		return store.AuditEntry{}, err
	}
	return chain(head, e)
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

func encodeState(v any) (string, error) {
	if v == nil {
		return "", nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// redact is the keyed hash that stands in for a secret in the audit log:
// the same secret gives the same value, so a reader sees that a secret
// changed (or did not) without learning anything about it.
func (s *Service) redact(secret []byte) string {
	if len(secret) == 0 {
		return ""
	}
	m := hmac.New(sha256.New, s.auditKey)
	m.Write(secret)
	return "hmac-sha256:" + hex.EncodeToString(m.Sum(nil)[:16])
}
