package service

import (
	"context"
	"time"

	"github.com/veilig/veilig/internal/call"
	"github.com/veilig/veilig/internal/store"
)

// Locator lists the live registrations (the registrar's memory).
type Locator interface {
	Live(now time.Time) []store.Binding
}

// ConnChecker tells whether a registration's connection is still open.
type ConnChecker interface {
	Connected(connID, transport string) bool
}

// CallControl sees and ends calls in progress (the B2BUA).
type CallControl interface {
	Snapshot() []call.Snapshot
	Hangup(id, why string) bool
}

// Registration is one registered device.
type Registration struct {
	Extension string    `json:"extension"`
	Contact   string    `json:"contact"`
	Source    string    `json:"source"`
	Transport string    `json:"transport"`
	UserAgent string    `json:"user_agent"`
	Expires   time.Time `json:"expires"`
	// State is "registered", or "disconnected" for a TLS or TCP binding
	// whose connection is gone: Veilig never dials a device, so it cannot
	// be reached until it connects and registers again.
	State string `json:"state"`
}

// Live-view operations.
var (
	OpRegistrations = define("reg.list", PermRegistrationsRead, false, "registered devices", (*Service).registrations)
	OpLiveCalls     = define("call.live", PermCallsRead, false, "calls in progress, with the protection of each leg", (*Service).liveCalls)
	OpHangup        = define("call.hangup", PermCallsControl, true, "end a call in progress (BYE on both legs)", (*Service).hangup)
)

func (s *Service) registrations(ctx context.Context, a Actor, _ struct{}) ([]Registration, error) {
	now := s.d.Now()
	var bs []store.Binding
	if s.d.Locator != nil {
		bs = s.d.Locator.Live(now)
	} else {
		var err error
		if bs, err = s.d.Store.LoadBindings(ctx, now); err != nil {
			return nil, storeErr("load registrations", err)
		}
	}
	only := scoped(a)
	out := make([]Registration, 0, len(bs))
	for _, b := range bs {
		if only != "" && b.Number != only {
			continue
		}
		r := Registration{Extension: b.Number, Contact: b.Contact, Source: b.Source.String(), Transport: b.Transport,
			UserAgent: b.UserAgent, Expires: b.Expires, State: "registered"}
		if b.Transport != "udp" {
			// Without a server, no connection is open.
			if s.d.Conns == nil || !s.d.Conns.Connected(b.ConnID, b.Transport) {
				r.State = "disconnected"
			}
		}
		out = append(out, r)
	}
	return out, nil
}

func (s *Service) deviceCounts(ctx context.Context, now time.Time) (map[string]int, error) {
	regs, err := s.registrations(ctx, Actor{Role: RoleOwner}, struct{}{})
	if err != nil {
		return nil, err
	}
	n := map[string]int{}
	for _, r := range regs {
		if r.State == "registered" {
			n[r.Extension]++
		}
	}
	return n, nil
}

func (s *Service) liveCalls(_ context.Context, a Actor, _ struct{}) ([]call.Snapshot, error) {
	if s.d.Calls == nil {
		return nil, unavailable()
	}
	all := s.d.Calls.Snapshot()
	only := scoped(a)
	if only == "" {
		return all, nil
	}
	var out []call.Snapshot
	for _, c := range all {
		if c.From == only || c.To == only {
			out = append(out, c)
		}
	}
	return out, nil
}

// CallRequest names a call in progress.
type CallRequest struct {
	ID string `json:"id"`
}

func (s *Service) hangup(ctx context.Context, a Actor, req CallRequest) (struct{}, error) {
	if s.d.Calls == nil {
		return struct{}{}, unavailable()
	}
	var snap *call.Snapshot
	for _, c := range s.d.Calls.Snapshot() {
		if c.ID == req.ID {
			snap = &c
		}
	}
	if snap == nil {
		return struct{}{}, notFound("no call %s in progress (see `veilig calls --live`)", req.ID)
	}
	// The audit entry is written first: a hangup that cannot be recorded
	// does not happen.
	err := s.change(ctx, a, "call.hangup", req.ID, func(store.Tx) (any, any, error) { return snap, nil, nil })
	if err != nil {
		return struct{}{}, err
	}
	if !s.d.Calls.Hangup(req.ID, "ended by "+a.Name+" via "+string(a.Channel)) {
		return struct{}{}, notFound("call %s ended before it could be hung up", req.ID)
	}
	return struct{}{}, nil
}

func unavailable() error {
	return &Error{Kind: Unavailable, Message: "the server is not running: live calls exist only in a running server (start it with `veilig serve`)"}
}
