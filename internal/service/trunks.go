package service

import (
	"context"
	"errors"
	"sort"
	"strings"

	"github.com/veilig/veilig/internal/store"
	"github.com/veilig/veilig/internal/trunk"
)

// Trunk is a carrier trunk as management sees it (never its secret).
type Trunk struct {
	Name              string            `json:"name"`
	Host              string            `json:"host"`
	Port              int               `json:"port"`
	Transport         string            `json:"transport"`
	InsecureTransport bool              `json:"insecure_transport"`
	Auth              string            `json:"auth"`
	Username          string            `json:"username,omitempty"`
	HasSecret         bool              `json:"has_secret"`
	Addresses         []string          `json:"addresses,omitempty"`
	Media             string            `json:"media"`
	ServerName        string            `json:"server_name,omitempty"`
	Pin               string            `json:"pin,omitempty"`
	CAFile            string            `json:"ca_file,omitempty"`
	ClientCert        string            `json:"client_cert,omitempty"`
	ClientKey         string            `json:"client_key,omitempty"`
	DIDs              map[string]string `json:"dids,omitempty"`
	Outbound          bool              `json:"outbound"`
	// Verify says how the carrier's certificate is checked.
	Verify string `json:"verify"`
}

// auditTrunk is what the audit log keeps of a trunk: the secret as a
// keyed hash.
type auditTrunk struct {
	Trunk
	Secret string `json:"secret,omitempty"`
}

func trunkView(t store.Trunk) Trunk {
	v := Trunk{Name: t.Name, Host: t.Host, Port: t.Port, Transport: t.Transport, InsecureTransport: t.InsecureTransport,
		Auth: t.Auth, Username: t.Username, HasSecret: len(t.Secret) > 0, Addresses: t.Addresses, Media: t.Media,
		ServerName: t.ServerName, Pin: t.Pin, CAFile: t.CAFile, ClientCert: t.ClientCert, ClientKey: t.ClientKey,
		DIDs: t.DIDs, Outbound: t.Outbound, Verify: "chain+name"}
	if t.Pin != "" {
		v.Verify = "pinned"
	}
	if t.Transport != "tls" {
		v.Verify = "INSECURE " + t.Transport
	}
	return v
}

func (s *Service) auditTrunk(t store.Trunk) *auditTrunk {
	at := &auditTrunk{Trunk: trunkView(t)}
	if len(t.Secret) > 0 {
		if b, err := s.d.Key.Open(t.Secret, []byte("veilig/trunk/"+t.Name)); err == nil {
			at.Secret = s.redact(b)
		} else {
			at.Secret = s.redact(t.Secret)
		}
	}
	return at
}

// TrunkRequest adds or changes a trunk. For "set", only fields named in
// Set change (their flag or JSON names: host, port, transport, ...).
type TrunkRequest struct {
	Name              string            `json:"name"`
	Host              string            `json:"host,omitempty"`
	Port              int               `json:"port,omitempty"`
	Transport         string            `json:"transport,omitempty"`
	InsecureTransport bool              `json:"insecure_transport,omitempty"`
	Auth              string            `json:"auth,omitempty"`
	Username          string            `json:"username,omitempty"`
	Secret            string            `json:"secret,omitempty"`
	Addresses         []string          `json:"addresses,omitempty"`
	Media             string            `json:"media,omitempty"`
	ServerName        string            `json:"server_name,omitempty"`
	Pin               string            `json:"pin,omitempty"`
	CAFile            string            `json:"ca_file,omitempty"`
	ClientCert        string            `json:"client_cert,omitempty"`
	ClientKey         string            `json:"client_key,omitempty"`
	DIDs              map[string]string `json:"dids,omitempty"` // added to (set) or the whole map (add)
	Outbound          bool              `json:"outbound,omitempty"`
	// Set lists the fields a "set" changes; ignored by "add".
	Set []string `json:"set,omitempty"`
}

// Trunk operations.
var (
	OpListTrunks  = define("trunk.list", PermTrunksRead, false, "carrier trunks", (*Service).listTrunks)
	OpAddTrunk    = define("trunk.add", PermTrunksWrite, true, "add a carrier trunk", (*Service).addTrunk)
	OpSetTrunk    = define("trunk.set", PermTrunksWrite, true, "change a carrier trunk", (*Service).setTrunk)
	OpRemoveTrunk = define("trunk.remove", PermTrunksWrite, true, "remove a carrier trunk", (*Service).removeTrunk)
	OpAddDID      = define("did.add", PermTrunksWrite, true, "route an inbound number on a trunk to an extension", (*Service).addDID)
	OpRemoveDID   = define("did.remove", PermTrunksWrite, true, "stop routing an inbound number", (*Service).removeDID)
)

func (s *Service) listTrunks(ctx context.Context, _ Actor, _ struct{}) ([]Trunk, error) {
	ts, err := s.d.Store.ListTrunks(ctx)
	if err != nil {
		return nil, storeErr("list trunks", err)
	}
	out := make([]Trunk, 0, len(ts))
	for _, t := range ts {
		out = append(out, trunkView(t))
	}
	return out, nil
}

func (s *Service) addTrunk(ctx context.Context, a Actor, req TrunkRequest) (Trunk, error) {
	t := store.Trunk{Name: req.Name, Transport: "tls", Auth: "register", Media: "srtp"}
	s.applyTrunk(&t, req, nil)
	if err := trunk.Validate(t); err != nil {
		return Trunk{}, invalid("", "%v", err)
	}
	err := s.change(ctx, a, "trunk.create", t.Name, func(tx store.Tx) (any, any, error) {
		if _, err := tx.Trunk(ctx, t.Name); err == nil {
			return nil, nil, conflict("trunk %s already exists (use `veilig trunk set %s ...`)", t.Name, t.Name)
		}
		if err := tx.SaveTrunk(ctx, t); err != nil {
			return nil, nil, err
		}
		return nil, s.auditTrunk(t), nil
	})
	return trunkView(t), err
}

func (s *Service) setTrunk(ctx context.Context, a Actor, req TrunkRequest) (Trunk, error) {
	var out store.Trunk
	err := s.change(ctx, a, "trunk.update", req.Name, func(tx store.Tx) (any, any, error) {
		t, err := tx.Trunk(ctx, req.Name)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, notFound("trunk %s does not exist (use `veilig trunk add`)", req.Name)
		}
		if err != nil {
			return nil, nil, err
		}
		before := s.auditTrunk(t)
		set := map[string]bool{}
		for _, f := range req.Set {
			set[strings.ReplaceAll(f, "-", "_")] = true
		}
		s.applyTrunk(&t, req, set)
		if err := trunk.Validate(t); err != nil {
			return nil, nil, invalid("", "%v", err)
		}
		if err := tx.SaveTrunk(ctx, t); err != nil {
			return nil, nil, err
		}
		out = t
		return before, s.auditTrunk(t), nil
	})
	return trunkView(out), err
}

// applyTrunk copies req into t: every field for add (set == nil), else
// only those named.
func (s *Service) applyTrunk(t *store.Trunk, req TrunkRequest, set map[string]bool) {
	apply := func(name string, f func()) {
		if set == nil || set[name] {
			f()
		}
	}
	if set == nil {
		// Defaults of a new trunk stay where the request leaves them out.
		if req.Transport == "" {
			req.Transport = t.Transport
		}
		if req.Auth == "" {
			req.Auth = t.Auth
		}
		if req.Media == "" {
			req.Media = t.Media
		}
	}
	apply("host", func() { t.Host = req.Host })
	apply("port", func() { t.Port = req.Port })
	apply("transport", func() { t.Transport = req.Transport })
	apply("insecure_transport", func() { t.InsecureTransport = req.InsecureTransport })
	apply("auth", func() { t.Auth = req.Auth })
	apply("username", func() { t.Username = req.Username })
	apply("media", func() { t.Media = req.Media })
	apply("server_name", func() { t.ServerName = req.ServerName })
	apply("pin", func() { t.Pin = req.Pin })
	apply("ca_file", func() { t.CAFile = req.CAFile })
	apply("client_cert", func() { t.ClientCert = req.ClientCert })
	apply("client_key", func() { t.ClientKey = req.ClientKey })
	apply("outbound", func() { t.Outbound = req.Outbound })
	apply("addresses", func() {
		t.Addresses = nil
		for _, p := range req.Addresses {
			if p = strings.TrimSpace(p); p != "" {
				t.Addresses = append(t.Addresses, p)
			}
		}
	})
	if len(req.DIDs) > 0 {
		if t.DIDs == nil {
			t.DIDs = map[string]string{}
		}
		for num, ext := range req.DIDs {
			t.DIDs[num] = ext
		}
	}
	if req.Secret != "" {
		t.Secret = trunk.SealSecret(s.d.Key, t.Name, req.Secret)
	}
}

// NameRequest names one trunk.
type NameRequest struct {
	Name string `json:"name"`
}

func (s *Service) removeTrunk(ctx context.Context, a Actor, req NameRequest) (struct{}, error) {
	err := s.change(ctx, a, "trunk.remove", req.Name, func(tx store.Tx) (any, any, error) {
		t, err := tx.Trunk(ctx, req.Name)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, notFound("trunk %s does not exist (see `veilig trunk list`)", req.Name)
		}
		if err != nil {
			return nil, nil, err
		}
		if err := tx.DeleteTrunk(ctx, req.Name); err != nil {
			return nil, nil, err
		}
		return s.auditTrunk(t), nil, nil
	})
	return struct{}{}, err
}

// DIDRequest routes Number on Trunk to Extension.
type DIDRequest struct {
	Trunk     string `json:"trunk"`
	Number    string `json:"number"`
	Extension string `json:"extension,omitempty"`
}

func (s *Service) addDID(ctx context.Context, a Actor, req DIDRequest) (Trunk, error) {
	if req.Number == "" || req.Extension == "" {
		return Trunk{}, invalid("number", "a DID needs a number and an extension")
	}
	return s.editDIDs(ctx, a, "did.add", req, func(d map[string]string) error {
		d[req.Number] = req.Extension
		return nil
	})
}

func (s *Service) removeDID(ctx context.Context, a Actor, req DIDRequest) (Trunk, error) {
	return s.editDIDs(ctx, a, "did.remove", req, func(d map[string]string) error {
		if _, ok := d[req.Number]; !ok {
			return notFound("trunk %s has no DID %s", req.Trunk, req.Number)
		}
		delete(d, req.Number)
		return nil
	})
}

func (s *Service) editDIDs(ctx context.Context, a Actor, action string, req DIDRequest, edit func(map[string]string) error) (Trunk, error) {
	var out store.Trunk
	err := s.change(ctx, a, action, req.Trunk+"/"+req.Number, func(tx store.Tx) (any, any, error) {
		t, err := tx.Trunk(ctx, req.Trunk)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, notFound("trunk %s does not exist (see `veilig trunk list`)", req.Trunk)
		}
		if err != nil {
			return nil, nil, err
		}
		before := s.auditTrunk(t)
		if t.DIDs == nil {
			t.DIDs = map[string]string{}
		}
		if err := edit(t.DIDs); err != nil {
			return nil, nil, err
		}
		if err := tx.SaveTrunk(ctx, t); err != nil {
			return nil, nil, err
		}
		out = t
		return before, s.auditTrunk(t), nil
	})
	return trunkView(out), err
}

// SortedDIDs lists a trunk's DIDs as "number->extension", sorted.
func SortedDIDs(t Trunk) []string {
	var ds []string
	for num, ext := range t.DIDs {
		ds = append(ds, num+"->"+ext)
	}
	sort.Strings(ds)
	return ds
}
