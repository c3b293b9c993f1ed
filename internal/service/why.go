package service

import (
	"context"
	"errors"
	"net/netip"
	"slices"

	"github.com/veilig/veilig/internal/config"
	"github.com/veilig/veilig/internal/policy"
	"github.com/veilig/veilig/internal/store"
)

// WhyRequest asks what refuses a source (and an extension).
type WhyRequest struct {
	Addr      string `json:"addr"`
	Extension string `json:"extension,omitempty"`
}

// WhyResult lists the reasons; Live is false when only the store was
// consulted (no server: rate limits are not known).
type WhyResult struct {
	Reasons []policy.Reason `json:"reasons"`
	Live    bool            `json:"live"`
}

// OpWhy explains refusals.
var OpWhy = define("why", PermPolicyRead, false, "everything that refuses a source or extension, and how to lift each", (*Service).why)

func (s *Service) why(ctx context.Context, _ Actor, req WhyRequest) (WhyResult, error) {
	addr, err := netip.ParseAddr(req.Addr)
	if err != nil {
		return WhyResult{}, invalid("addr", "%q is not an IP address", req.Addr)
	}
	addr = addr.Unmap()
	now := s.d.Now()
	if s.d.Explainer != nil {
		return WhyResult{Reasons: s.d.Explainer.Explain(addr, req.Extension, now), Live: true}, nil
	}
	var out []policy.Reason
	bans, err := s.d.Store.ListBans(ctx, now)
	if err != nil {
		return WhyResult{}, storeErr("read bans", err)
	}
	for _, b := range bans {
		switch {
		case b.Net.IsValid() && b.Net.Contains(addr):
			out = append(out, policy.Reason{Stage: policy.StageBan, Rule: b.Rule, Refuses: true, Message: "in the banned network " + b.Net.String() + ": " + b.Reason,
				Until: b.End, Lift: "veilig ban remove " + b.Net.String()})
		case b.Addr == addr:
			out = append(out, policy.Reason{Stage: policy.StageBan, Rule: b.Rule, Refuses: true, Message: b.Reason, Until: b.End, Lift: "veilig ban remove " + addr.String()})
		}
	}
	allow, _ := config.Prefixes(s.d.Config.Guard.AllowSources)
	if len(allow) > 0 && !slices.ContainsFunc(allow, func(p netip.Prefix) bool { return p.Contains(addr) }) {
		out = append(out, policy.Reason{Stage: "allowlist", Rule: "allow_sources", Refuses: true, Message: "outside guard.allow_sources", Lift: "add it to guard.allow_sources in the config"})
	}
	if ext := req.Extension; ext != "" {
		locks, err := s.d.Store.ListLocks(ctx, now)
		if err != nil {
			return WhyResult{}, storeErr("read locks", err)
		}
		for _, l := range locks {
			switch {
			case l.Account != ext:
			case !l.Source.IsValid():
				out = append(out, policy.Reason{Stage: policy.StageLockout, Rule: "account_locked", Refuses: true,
					Message: "locked against new sources: " + l.Reason, Until: l.Until, Lift: "veilig ext unlock " + ext})
			case l.Source == addr:
				out = append(out, policy.Reason{Stage: policy.StageLockout, Rule: policy.RuleSourceLock, Refuses: true,
					Message: "locked for " + addr.String() + " alone: " + l.Reason, Until: l.Until, Lift: "veilig ext unlock " + ext})
			}
		}
		x, err := s.d.Store.Extension(ctx, ext)
		switch {
		case errors.Is(err, store.ErrNotFound):
			out = append(out, policy.Reason{Stage: "auth", Rule: "unknown_extension", Refuses: true, Message: "no such extension", Lift: "veilig ext add " + ext})
		case err != nil:
			return WhyResult{}, storeErr("read extension", err)
		case len(x.AllowFrom) > 0 && !slices.ContainsFunc(x.AllowFrom, func(p netip.Prefix) bool { return p.Contains(addr) }):
			out = append(out, policy.Reason{Stage: "allowlist", Rule: "extension_allow_from", Refuses: true, Message: "outside the extension's allowed networks", Lift: "veilig ext set " + ext + " --allow-from CIDR[,CIDR]"})
		}
		if su, err := s.d.Store.Suspension(ctx, ext); err == nil {
			out = append(out, policy.Reason{Stage: "fraud", Rule: "suspended", Refuses: true, Message: "outbound calling suspended: " + su.Reason, Lift: "veilig ext lift " + ext})
		}
	}
	return WhyResult{Reasons: out}, nil
}
