package service

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/veilig/veilig/internal/accounts"
	"github.com/veilig/veilig/internal/auth"
	"github.com/veilig/veilig/internal/store"
)

// Classes of service an extension can have for outbound calls.
var Classes = []ClassInfo{
	{"internal", "extensions only, no outside calls"},
	{"national", "numbers in fraud.country"},
	{"eu", "national and EU/EEA numbers"},
	{"international", "any destination the fraud guard allows"},
}

// ClassInfo describes a class of service.
type ClassInfo struct {
	Name string `json:"name"`
	Doc  string `json:"doc"`
}

// Extension is an extension as management sees it (never its secret).
type Extension struct {
	Number    string         `json:"number"`
	Name      string         `json:"name"`
	Realm     string         `json:"realm"`
	CreatedAt time.Time      `json:"created_at"`
	UpdatedAt time.Time      `json:"updated_at"`
	AllowFrom []netip.Prefix `json:"allow_from"`
	Class     string         `json:"class"`
	CallerIDs []string       `json:"caller_ids"`
	// State the defences keep about it.
	LockedUntil time.Time `json:"locked_until,omitzero"`
	LockReason  string    `json:"lock_reason,omitempty"`
	Suspended   string    `json:"suspended,omitempty"` // the reason, when outbound calling is suspended
	Devices     int       `json:"devices"`
}

// auditExtension is what the audit log keeps of an extension: everything
// but the HA1 values, whose keyed hash stands in for them.
type auditExtension struct {
	Number    string   `json:"number"`
	Name      string   `json:"name"`
	Realm     string   `json:"realm"`
	AllowFrom []string `json:"allow_from"`
	Class     string   `json:"class"`
	CallerIDs []string `json:"caller_ids"`
	Secret    string   `json:"secret"`
}

func (s *Service) auditExt(ctx context.Context, e store.Extension) *auditExtension {
	ae := &auditExtension{Number: e.Number, Name: e.Name, Realm: e.Realm, Class: e.Class, CallerIDs: e.CallerIDs, AllowFrom: []string{}}
	for _, p := range e.AllowFrom {
		ae.AllowFrom = append(ae.AllowFrom, p.String())
	}
	// The HA1 is sealed with a random nonce: hash what it opens to, so
	// the same secret always redacts alike.
	if ha1, err := accounts.OpenHA1(s.d.Key, e.Number, auth.SHA256, e.HA1SHA256); err == nil {
		ae.Secret = s.redact(ha1)
	} else {
		ae.Secret = s.redact(e.HA1SHA256)
	}
	return ae
}

// AddExtensionRequest creates an extension. An empty Secret makes Veilig
// generate one (returned once); a chosen one must pass the password policy.
type AddExtensionRequest struct {
	Number string `json:"number"`
	Name   string `json:"name"`
	Secret string `json:"secret,omitempty"`
}

// SecretResult carries a generated secret, shown once.
type SecretResult struct {
	Extension Extension `json:"extension"`
	// Secret is set only when Veilig generated it.
	Secret string `json:"secret,omitempty"`
	Realm  string `json:"realm"`
}

// Extension operations.
var (
	OpAddExtension    = define("ext.add", PermExtensionsWrite, true, "create an extension (SIP account)", (*Service).addExtension)
	OpListExtensions  = define("ext.list", PermExtensionsRead, false, "list extensions with their lock, suspension and device count", (*Service).listExtensions)
	OpGetExtension    = define("ext.get", PermExtensionsRead, false, "one extension", (*Service).getExtension)
	OpSetExtension    = define("ext.set", PermExtensionsWrite, true, "change an extension's name, allowlist, class or caller-IDs", (*Service).setExtension)
	OpSetSecret       = define("ext.passwd", PermExtensionsWrite, true, "set or generate an extension's secret", (*Service).setSecret)
	OpRemoveExtension = define("ext.remove", PermExtensionsWrite, true, "remove an extension and its registrations", (*Service).removeExtension)
	OpUnlock          = define("ext.unlock", PermExtensionsWrite, true, "end an extension's lockout", (*Service).unlock)
	OpLift            = define("ext.lift", PermExtensionsWrite, true, "end a toll-fraud suspension of outbound calling", (*Service).lift)
	OpImport          = define("ext.import", PermExtensionsWrite, true, "create or update many extensions with chosen secrets", (*Service).importExtensions)
	OpClasses         = define("class.list", PermExtensionsRead, false, "the classes of service", (*Service).classes)
)

func (s *Service) addExtension(ctx context.Context, a Actor, req AddExtensionRequest) (SecretResult, error) {
	if err := accounts.ValidNumber(req.Number); err != nil {
		return SecretResult{}, invalid("number", "%v", err)
	}
	secret, generated, err := s.secret(req.Secret)
	if err != nil {
		return SecretResult{}, err
	}
	now := s.d.Now().UTC()
	md5, sha := accounts.Sealed(s.d.Key, req.Number, s.realm(), secret)
	x := store.Extension{Number: req.Number, Name: req.Name, Realm: s.realm(), HA1MD5: md5, HA1SHA256: sha, CreatedAt: now, UpdatedAt: now}
	err = s.change(ctx, a, "extension.create", req.Number, func(tx store.Tx) (any, any, error) {
		if err := tx.CreateExtension(ctx, x); err != nil {
			if errors.Is(err, store.ErrExists) {
				return nil, nil, conflict("extension %s already exists (use `veilig ext passwd %s` to change its secret)", req.Number, req.Number)
			}
			return nil, nil, err
		}
		return nil, s.auditExt(ctx, x), nil
	})
	if err != nil {
		return SecretResult{}, err
	}
	return s.secretResult(x, secret, generated), nil
}

// secret checks a chosen secret or makes one.
func (s *Service) secret(chosen string) (secret string, generated bool, err error) {
	if chosen == "" {
		g, err := auth.GenerateSecret()
		if err != nil {
			return "", false, &Error{Kind: Internal, Message: "generate a secret: " + err.Error(), Err: err}
		}
		return g, true, nil
	}
	if err := auth.CheckPassword(chosen); err != nil {
		return "", false, invalid("secret", "%v", err)
	}
	return chosen, false, nil
}

func view(x store.Extension) Extension {
	return Extension{Number: x.Number, Name: x.Name, Realm: x.Realm, CreatedAt: x.CreatedAt, UpdatedAt: x.UpdatedAt,
		AllowFrom: x.AllowFrom, Class: x.Class, CallerIDs: x.CallerIDs}
}

// ListExtensionsRequest lists extensions.
type ListExtensionsRequest struct{}

func (s *Service) listExtensions(ctx context.Context, a Actor, _ ListExtensionsRequest) ([]Extension, error) {
	xs, err := s.d.Store.ListExtensions(ctx)
	if err != nil {
		return nil, storeErr("list extensions", err)
	}
	now := s.d.Now()
	locks, err := s.d.Store.ListLocks(ctx, now)
	if err != nil {
		return nil, storeErr("list locks", err)
	}
	sus, err := s.d.Store.ListSuspensions(ctx)
	if err != nil {
		return nil, storeErr("list suspensions", err)
	}
	devices, err := s.deviceCounts(ctx, now)
	if err != nil {
		return nil, err
	}
	only := scoped(a)
	out := make([]Extension, 0, len(xs))
	for _, x := range xs {
		if only != "" && x.Number != only {
			continue
		}
		v := view(x)
		for _, l := range locks {
			if l.Account == x.Number {
				v.LockedUntil, v.LockReason = l.Until, l.Reason
			}
		}
		for _, su := range sus {
			if su.Extension == x.Number {
				v.Suspended = su.Reason
				if v.Suspended == "" {
					v.Suspended = "suspended"
				}
			}
		}
		v.Devices = devices[x.Number]
		out = append(out, v)
	}
	return out, nil
}

// ExtensionRequest names one extension.
type ExtensionRequest struct {
	Number string `json:"number"`
}

func (s *Service) getExtension(ctx context.Context, a Actor, req ExtensionRequest) (Extension, error) {
	if only := scoped(a); only != "" && req.Number != only {
		return Extension{}, forbidden("an agent sees only their own extension")
	}
	all, err := s.listExtensions(ctx, Actor{Role: RoleOwner}, ListExtensionsRequest{})
	if err != nil {
		return Extension{}, err
	}
	for _, x := range all {
		if x.Number == req.Number {
			return x, nil
		}
	}
	return Extension{}, s.noExtension(req.Number)
}

func (s *Service) noExtension(n string) error {
	return notFound("extension %s does not exist (see `veilig ext list`)", n)
}

// SetExtensionRequest changes the fields that are set (nil leaves a field
// as it is; an empty AllowFrom allows anywhere).
type SetExtensionRequest struct {
	Number    string    `json:"number"`
	Name      *string   `json:"name,omitempty"`
	AllowFrom *[]string `json:"allow_from,omitempty"`
	Class     *string   `json:"class,omitempty"`
	CallerIDs *[]string `json:"caller_ids,omitempty"`
}

func (s *Service) setExtension(ctx context.Context, a Actor, req SetExtensionRequest) (Extension, error) {
	if req.Name == nil && req.AllowFrom == nil && req.Class == nil && req.CallerIDs == nil {
		return Extension{}, invalid("", "nothing to set: give a name, allow_from, class or caller_ids")
	}
	var allow []netip.Prefix
	if req.AllowFrom != nil {
		for _, p := range *req.AllowFrom {
			if p = strings.TrimSpace(p); p == "" {
				continue
			}
			pf, err := parsePrefix(p)
			if err != nil {
				return Extension{}, invalid("allow_from", "allow_from %q: %v", p, err)
			}
			allow = append(allow, pf)
		}
	}
	if req.Class != nil && !slices.ContainsFunc(Classes, func(c ClassInfo) bool { return c.Name == *req.Class }) && *req.Class != "" {
		return Extension{}, invalid("class", "class %q: use internal, national, eu or international", *req.Class)
	}
	var cids []string
	if req.CallerIDs != nil {
		for _, n := range *req.CallerIDs {
			if n = strings.TrimSpace(n); n != "" {
				if !validCallerID(n) {
					return Extension{}, invalid("caller_ids", "caller-ID %q: use digits with an optional leading +", n)
				}
				cids = append(cids, n)
			}
		}
	}
	var out store.Extension
	err := s.change(ctx, a, "extension.update", req.Number, func(tx store.Tx) (any, any, error) {
		x, err := tx.Extension(ctx, req.Number)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, s.noExtension(req.Number)
		}
		if err != nil {
			return nil, nil, err
		}
		before := s.auditExt(ctx, x)
		if req.Name != nil {
			x.Name = *req.Name
		}
		if req.AllowFrom != nil {
			x.AllowFrom = allow
		}
		if req.Class != nil {
			x.Class = *req.Class
		}
		if req.CallerIDs != nil {
			x.CallerIDs = cids
		}
		x.UpdatedAt = s.d.Now().UTC()
		if err := tx.UpdateExtension(ctx, x); err != nil {
			return nil, nil, err
		}
		out = x
		return before, s.auditExt(ctx, x), nil
	})
	if err != nil {
		return Extension{}, err
	}
	return view(out), nil
}

func validCallerID(n string) bool {
	n = strings.TrimPrefix(n, "+")
	if n == "" || len(n) > 20 {
		return false
	}
	for _, c := range n {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// SetSecretRequest replaces a secret; empty generates one.
type SetSecretRequest struct {
	Number string `json:"number"`
	Secret string `json:"secret,omitempty"`
}

func (s *Service) setSecret(ctx context.Context, a Actor, req SetSecretRequest) (SecretResult, error) {
	secret, generated, err := s.secret(req.Secret)
	if err != nil {
		return SecretResult{}, err
	}
	var out store.Extension
	err = s.change(ctx, a, "extension.passwd", req.Number, func(tx store.Tx) (any, any, error) {
		x, err := tx.Extension(ctx, req.Number)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, s.noExtension(req.Number)
		}
		if err != nil {
			return nil, nil, err
		}
		before := s.auditExt(ctx, x)
		x.Realm = s.realm()
		x.HA1MD5, x.HA1SHA256 = accounts.Sealed(s.d.Key, req.Number, s.realm(), secret)
		x.UpdatedAt = s.d.Now().UTC()
		if err := tx.UpdateExtension(ctx, x); err != nil {
			return nil, nil, err
		}
		out = x
		return before, s.auditExt(ctx, x), nil
	})
	if err != nil {
		return SecretResult{}, err
	}
	return s.secretResult(out, secret, generated), nil
}

// secretResult shows a generated secret once; a chosen one is never
// echoed back.
func (s *Service) secretResult(x store.Extension, secret string, generated bool) SecretResult {
	res := SecretResult{Extension: view(x), Realm: s.realm()}
	if generated {
		res.Secret = secret
	}
	return res
}

func (s *Service) removeExtension(ctx context.Context, a Actor, req ExtensionRequest) (Extension, error) {
	var out store.Extension
	err := s.change(ctx, a, "extension.remove", req.Number, func(tx store.Tx) (any, any, error) {
		x, err := tx.Extension(ctx, req.Number)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, s.noExtension(req.Number)
		}
		if err != nil {
			return nil, nil, err
		}
		if err := tx.DeleteExtension(ctx, req.Number); err != nil {
			return nil, nil, err
		}
		out = x
		return s.auditExt(ctx, x), nil, nil
	})
	return view(out), err
}

func (s *Service) unlock(ctx context.Context, a Actor, req ExtensionRequest) (struct{}, error) {
	now := s.d.Now()
	err := s.change(ctx, a, "extension.unlock", req.Number, func(tx store.Tx) (any, any, error) {
		if _, err := tx.Extension(ctx, req.Number); errors.Is(err, store.ErrNotFound) {
			return nil, nil, s.noExtension(req.Number)
		} else if err != nil {
			return nil, nil, err
		}
		all, err := tx.ListLocks(ctx, now)
		if err != nil {
			return nil, nil, err
		}
		var locks []Lock
		for _, l := range all {
			if l.Account == req.Number {
				locks = append(locks, lockView(l))
			}
		}
		if len(locks) == 0 {
			return nil, nil, notFound("extension %s is not locked", req.Number)
		}
		// Both the account-wide lock and its source locks go.
		if err := tx.DeleteLock(ctx, req.Number); err != nil {
			return nil, nil, err
		}
		return locks, nil, nil
	})
	return struct{}{}, err
}

func (s *Service) lift(ctx context.Context, a Actor, req ExtensionRequest) (struct{}, error) {
	err := s.change(ctx, a, "extension.lift", req.Number, func(tx store.Tx) (any, any, error) {
		if _, err := tx.Extension(ctx, req.Number); errors.Is(err, store.ErrNotFound) {
			return nil, nil, s.noExtension(req.Number)
		} else if err != nil {
			return nil, nil, err
		}
		su, err := tx.Suspension(ctx, req.Number)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, notFound("outbound calling of %s is not suspended", req.Number)
		}
		if err != nil {
			return nil, nil, err
		}
		if err := tx.DeleteSuspension(ctx, req.Number); err != nil {
			return nil, nil, err
		}
		return su, nil, nil
	})
	return struct{}{}, err
}

// ImportRequest provisions extensions with chosen secrets (load tests,
// migrations); existing ones get the new secret.
type ImportRequest struct {
	Entries []ImportEntry `json:"entries"`
}

// ImportEntry is one extension to import.
type ImportEntry struct {
	Number string `json:"number"`
	Secret string `json:"secret"`
}

// ImportResult counts what an import did.
type ImportResult struct {
	Created int `json:"created"`
	Updated int `json:"updated"`
}

func (s *Service) importExtensions(ctx context.Context, a Actor, req ImportRequest) (ImportResult, error) {
	for i, e := range req.Entries {
		if err := accounts.ValidNumber(e.Number); err != nil {
			return ImportResult{}, invalid("entries", "entry %d: %v", i+1, err)
		}
		if err := auth.CheckPassword(e.Secret); err != nil {
			return ImportResult{}, invalid("entries", "entry %d (%s): %v", i+1, e.Number, err)
		}
	}
	var res ImportResult
	// One transaction for the whole file: all or nothing, and the running
	// server applies it once.
	err := s.changes(ctx, a, func(tx store.Tx, record recordFunc) error {
		res = ImportResult{}
		now := s.d.Now().UTC()
		for _, e := range req.Entries {
			md5, sha := accounts.Sealed(s.d.Key, e.Number, s.realm(), e.Secret)
			x, err := tx.Extension(ctx, e.Number)
			switch {
			case errors.Is(err, store.ErrNotFound):
				x = store.Extension{Number: e.Number, Realm: s.realm(), HA1MD5: md5, HA1SHA256: sha, CreatedAt: now, UpdatedAt: now}
				if err := tx.CreateExtension(ctx, x); err != nil {
					return err
				}
				if err := record("extension.create", e.Number, nil, s.auditExt(ctx, x)); err != nil {
					return err
				}
				res.Created++
			case err != nil:
				return err
			default:
				before := s.auditExt(ctx, x)
				x.Realm, x.HA1MD5, x.HA1SHA256, x.UpdatedAt = s.realm(), md5, sha, now
				if err := tx.UpdateExtension(ctx, x); err != nil {
					return err
				}
				if err := record("extension.passwd", e.Number, before, s.auditExt(ctx, x)); err != nil {
					return err
				}
				res.Updated++
			}
		}
		return nil
	})
	return res, err
}

func (s *Service) classes(context.Context, Actor, struct{}) ([]ClassInfo, error) {
	return slices.Clone(Classes), nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, errors.New("not an address or CIDR network")
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
