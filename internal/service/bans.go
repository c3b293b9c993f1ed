package service

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/veilig/veilig/internal/store"
)

// Ban is a source ban as management sees it.
type Ban struct {
	Addr   netip.Addr `json:"addr"`
	Rule   string     `json:"rule"`
	Reason string     `json:"reason"`
	Cause  []string   `json:"cause"`
	Start  time.Time  `json:"start"`
	End    time.Time  `json:"end"`
	Level  int        `json:"level"`
}

// Lock is an account lockout.
type Lock struct {
	Account string `json:"account"`
	// Source is set for a lock of the account at one address only (a
	// failing device behind an address whose other devices keep working).
	Source string    `json:"source,omitempty"`
	Until  time.Time `json:"until"`
	Level  int       `json:"level"`
	Reason string    `json:"reason"`
}

// Suspension is an extension whose outbound calling is suspended.
type Suspension struct {
	Extension string    `json:"extension"`
	Reason    string    `json:"reason"`
	Since     time.Time `json:"since"`
}

// Defence operations.
var (
	OpListBans        = define("ban.list", PermBansRead, false, "bans in force", (*Service).listBans)
	OpAddBan          = define("ban.add", PermBansWrite, true, "ban a source address", (*Service).addBan)
	OpRemoveBan       = define("ban.remove", PermBansWrite, true, "lift a ban", (*Service).removeBan)
	OpListLocks       = define("lock.list", PermBansRead, false, "account lockouts in force", (*Service).listLocks)
	OpListSuspensions = define("suspension.list", PermBansRead, false, "toll-fraud suspensions", (*Service).listSuspensions)
)

func banView(b store.Ban) Ban {
	return Ban{Addr: b.Addr, Rule: b.Rule, Reason: b.Reason, Cause: b.Cause, Start: b.Start, End: b.End, Level: b.Level}
}

func (s *Service) listBans(ctx context.Context, _ Actor, _ struct{}) ([]Ban, error) {
	bs, err := s.d.Store.ListBans(ctx, s.d.Now())
	if err != nil {
		return nil, storeErr("list bans", err)
	}
	out := make([]Ban, 0, len(bs))
	for _, b := range bs {
		out = append(out, banView(b))
	}
	return out, nil
}

// AddBanRequest bans Addr for For (default one hour).
type AddBanRequest struct {
	Addr   string        `json:"addr"`
	For    time.Duration `json:"for"`
	Reason string        `json:"reason"`
}

func (s *Service) addBan(ctx context.Context, a Actor, req AddBanRequest) (Ban, error) {
	addr, err := netip.ParseAddr(req.Addr)
	if err != nil {
		if _, perr := netip.ParsePrefix(req.Addr); perr == nil {
			return Ban{}, invalid("addr", "%q is a network: a ban names one source address (to keep a network out, leave it out of guard.allow_sources)", req.Addr)
		}
		return Ban{}, invalid("addr", "%q is not an IP address", req.Addr)
	}
	addr = addr.Unmap()
	if req.For == 0 {
		req.For = time.Hour
	}
	if req.For < 0 {
		return Ban{}, invalid("for", "the ban's duration must be positive, got %s", req.For)
	}
	if req.Reason == "" {
		req.Reason = "banned by " + a.Name
	}
	now := s.d.Now().UTC()
	b := store.Ban{Addr: addr, Rule: "manual", Reason: req.Reason, Cause: []string{"banned by " + a.Name + " via " + string(a.Channel)}, Start: now, End: now.Add(req.For)}
	err = s.change(ctx, a, "ban.add", addr.String(), func(tx store.Tx) (any, any, error) {
		var before any
		if old, err := tx.Ban(ctx, addr, now); err == nil {
			before = banView(old)
			if old.Level > b.Level {
				b.Level = old.Level
			}
		}
		if err := tx.SaveBan(ctx, b); err != nil {
			return nil, nil, err
		}
		return before, banView(b), nil
	})
	return banView(b), err
}

// AddrRequest names one source address.
type AddrRequest struct {
	Addr string `json:"addr"`
}

func (s *Service) removeBan(ctx context.Context, a Actor, req AddrRequest) (struct{}, error) {
	addr, err := netip.ParseAddr(req.Addr)
	if err != nil {
		return struct{}{}, invalid("addr", "%q is not an IP address", req.Addr)
	}
	addr = addr.Unmap()
	err = s.change(ctx, a, "ban.remove", addr.String(), func(tx store.Tx) (any, any, error) {
		old, err := tx.Ban(ctx, addr, s.d.Now())
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, notFound("%s is not banned (see `veilig ban list`)", addr)
		}
		if err != nil {
			return nil, nil, err
		}
		if err := tx.DeleteBan(ctx, addr); err != nil {
			return nil, nil, err
		}
		return banView(old), nil, nil
	})
	return struct{}{}, err
}

func (s *Service) listLocks(ctx context.Context, _ Actor, _ struct{}) ([]Lock, error) {
	ls, err := s.d.Store.ListLocks(ctx, s.d.Now())
	if err != nil {
		return nil, storeErr("list locks", err)
	}
	out := make([]Lock, 0, len(ls))
	for _, l := range ls {
		out = append(out, lockView(l))
	}
	return out, nil
}

func (s *Service) listSuspensions(ctx context.Context, _ Actor, _ struct{}) ([]Suspension, error) {
	ss, err := s.d.Store.ListSuspensions(ctx)
	if err != nil {
		return nil, storeErr("list suspensions", err)
	}
	out := make([]Suspension, 0, len(ss))
	for _, x := range ss {
		out = append(out, Suspension(x))
	}
	return out, nil
}

func lockView(l store.Lock) Lock {
	v := Lock{Account: l.Account, Until: l.Until, Level: l.Level, Reason: l.Reason}
	if l.Source.IsValid() {
		v.Source = l.Source.String()
	}
	return v
}
