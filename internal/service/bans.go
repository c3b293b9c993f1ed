package service

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/veilig/veilig/internal/store"
)

// Ban is a source ban as management sees it: of one address, or (Network)
// of every address in a CIDR network.
type Ban struct {
	Addr    string    `json:"addr"`
	Network bool      `json:"network,omitempty"`
	Rule    string    `json:"rule"`
	Reason  string    `json:"reason"`
	Cause   []string  `json:"cause"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Level   int       `json:"level"`
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
	OpAddBan          = define("ban.add", PermBansWrite, true, "ban a source address or network", (*Service).addBan)
	OpRemoveBan       = define("ban.remove", PermBansWrite, true, "lift a ban", (*Service).removeBan)
	OpListLocks       = define("lock.list", PermBansRead, false, "account lockouts in force", (*Service).listLocks)
	OpListSuspensions = define("suspension.list", PermBansRead, false, "toll-fraud suspensions", (*Service).listSuspensions)
)

func banView(b store.Ban) Ban {
	v := Ban{Addr: b.Addr.String(), Rule: b.Rule, Reason: b.Reason, Cause: b.Cause, Start: b.Start, End: b.End, Level: b.Level}
	if b.Net.IsValid() {
		v.Addr, v.Network = b.Net.String(), true
	}
	return v
}

// Network bans broader than these would refuse a large part of the
// internet; keeping all but known networks out is guard.allow_sources'
// job.
const (
	minBanBits4 = 8
	minBanBits6 = 32
)

// banTarget parses what a ban names: one address (a /32 or /128 is one
// too), or a network, masked.
func banTarget(field, s string) (addr netip.Addr, net netip.Prefix, err error) {
	if a, perr := netip.ParseAddr(s); perr == nil {
		return a.Unmap(), netip.Prefix{}, nil
	}
	p, perr := netip.ParsePrefix(s)
	if perr != nil {
		return addr, net, invalid(field, "%q is neither an IP address nor a network in CIDR form (203.0.113.0/24)", s)
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	p = p.Masked()
	if p.IsSingleIP() {
		return p.Addr(), netip.Prefix{}, nil
	}
	least := minBanBits4
	if p.Addr().Is6() {
		least = minBanBits6
	}
	if p.Bits() < least {
		return addr, net, invalid(field, "%s is too broad to ban (at most /%d); to admit only known networks, list them in guard.allow_sources", p, least)
	}
	return addr, p, nil
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

// AddBanRequest bans Addr (an address or a CIDR network) for For
// (default one hour).
type AddBanRequest struct {
	Addr   string        `json:"addr"`
	For    time.Duration `json:"for"`
	Reason string        `json:"reason"`
}

func (s *Service) addBan(ctx context.Context, a Actor, req AddBanRequest) (Ban, error) {
	addr, net, err := banTarget("addr", req.Addr)
	if err != nil {
		return Ban{}, err
	}
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
	b := store.Ban{Addr: addr, Net: net, Rule: "manual", Reason: req.Reason, Cause: []string{"banned by " + a.Name + " via " + string(a.Channel)}, Start: now, End: now.Add(req.For)}
	v := banView(b)
	err = s.change(ctx, a, "ban.add", v.Addr, func(tx store.Tx) (any, any, error) {
		var before any
		old, err := currentBan(ctx, tx, addr, net, now)
		if err == nil {
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

// currentBan reads the ban of addr, or of net when it is set.
func currentBan(ctx context.Context, tx store.Bans, addr netip.Addr, net netip.Prefix, now time.Time) (store.Ban, error) {
	if net.IsValid() {
		return tx.NetBan(ctx, net, now)
	}
	return tx.Ban(ctx, addr, now)
}

// AddrRequest names one source address, or a banned network.
type AddrRequest struct {
	Addr string `json:"addr"`
}

func (s *Service) removeBan(ctx context.Context, a Actor, req AddrRequest) (struct{}, error) {
	addr, net, err := banTarget("addr", req.Addr)
	if err != nil {
		return struct{}{}, err
	}
	key := banView(store.Ban{Addr: addr, Net: net}).Addr
	err = s.change(ctx, a, "ban.remove", key, func(tx store.Tx) (any, any, error) {
		old, err := currentBan(ctx, tx, addr, net, s.d.Now())
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, notFound("%s is not banned (see `veilig ban list`)", key)
		}
		if err != nil {
			return nil, nil, err
		}
		if net.IsValid() {
			err = tx.DeleteNetBan(ctx, net)
		} else {
			err = tx.DeleteBan(ctx, addr)
		}
		if err != nil {
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
