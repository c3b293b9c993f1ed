package service

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
)

// Op is one operation of the service: its name on the wire, the
// permission it needs, whether it changes anything, and its
// implementation. Ops are declared once (ops.go) and used by every
// transport: Call runs one through any Caller, Dispatch runs one by name
// from JSON (the control socket, the HTTP API).
type Op[Req, Res any] struct {
	Name    string
	Perm    Perm
	Mutates bool
	Doc     string
	fn      func(s *Service, ctx context.Context, a Actor, req Req) (Res, error)
}

// Caller runs operations: in this process (Local) or in the running
// server (the control socket's client).
type Caller interface {
	// Invoke runs the named op. local is the direct call, for callers in
	// the same process; remote callers send req and decode into res.
	Invoke(ctx context.Context, name string, req, res any, local func(s *Service, a Actor) error) error
}

// Call runs o through c.
func (o *Op[Req, Res]) Call(ctx context.Context, c Caller, req Req) (Res, error) {
	var res Res
	err := c.Invoke(ctx, o.Name, req, &res, func(s *Service, a Actor) error {
		r, err := o.run(s, ctx, a, req)
		res = r
		return err
	})
	return res, err
}

func (o *Op[Req, Res]) run(s *Service, ctx context.Context, a Actor, req Req) (Res, error) {
	var zero Res
	if err := authorize(a, o.Perm); err != nil {
		return zero, err
	}
	return o.fn(s, ctx, a, req)
}

// Local runs operations on a Service in this process as Actor.
type Local struct {
	S     *Service
	Actor Actor
}

// Invoke implements Caller.
func (l Local) Invoke(_ context.Context, _ string, _, _ any, local func(s *Service, a Actor) error) error {
	return local(l.S, l.Actor)
}

// OpInfo describes an op for transports that work by name.
type OpInfo struct {
	Name    string `json:"name"`
	Perm    Perm   `json:"perm"`
	Mutates bool   `json:"mutates"`
	Doc     string `json:"doc"`
	// New returns a pointer to a zero request, for decoding.
	New      func() any `json:"-"`
	dispatch func(s *Service, ctx context.Context, a Actor, req any) (any, error)
}

var (
	regMu    sync.RWMutex
	registry = map[string]*OpInfo{}
)

func define[Req, Res any](name string, perm Perm, mutates bool, doc string,
	fn func(s *Service, ctx context.Context, a Actor, req Req) (Res, error)) *Op[Req, Res] {
	o := &Op[Req, Res]{Name: name, Perm: perm, Mutates: mutates, Doc: doc, fn: fn}
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("service: op " + name + " defined twice")
	}
	registry[name] = &OpInfo{
		Name: name, Perm: perm, Mutates: mutates, Doc: doc,
		New: func() any { return new(Req) },
		dispatch: func(s *Service, ctx context.Context, a Actor, req any) (any, error) {
			return o.run(s, ctx, a, *req.(*Req))
		},
	}
	return o
}

// Ops lists every operation, by name.
func Ops() []*OpInfo {
	regMu.RLock()
	defer regMu.RUnlock()
	out := make([]*OpInfo, 0, len(registry))
	for _, o := range registry {
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b *OpInfo) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

// Lookup finds an op by name.
func Lookup(name string) (*OpInfo, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	o, ok := registry[name]
	return o, ok
}

// Dispatch runs the named op with a JSON request, for transports that
// work by name. Unknown fields in the request are refused: a typo must
// not silently do less than asked.
func (s *Service) Dispatch(ctx context.Context, a Actor, name string, raw json.RawMessage) (any, error) {
	info, ok := Lookup(name)
	if !ok {
		return nil, invalid("op", "unknown operation %q", name)
	}
	req := info.New()
	if len(raw) > 0 && string(raw) != "null" {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(req); err != nil {
			return nil, invalid("", "%s: bad request: %v", name, err)
		}
	}
	res, err := info.dispatch(s, ctx, a, req)
	if err != nil {
		return nil, err
	}
	return res, nil
}

func (o *OpInfo) String() string { return fmt.Sprintf("%s (%s)", o.Name, o.Perm) }
