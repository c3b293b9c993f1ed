package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/veilig/veilig/internal/app"
	"github.com/veilig/veilig/internal/config"
	"github.com/veilig/veilig/internal/policy"
	"github.com/veilig/veilig/internal/store"
)

// runWhy says everything that currently refuses a source (and account),
// and the command that lifts each: one screen instead of firewall listings
// and log greps.
func runWhy(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("why", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var c common
	c.register(fs)
	ext := fs.String("ext", "", "also explain this extension")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: veilig why ADDR [--ext NUMBER]")
	}
	addr, err := netip.ParseAddr(pos[0])
	if err != nil {
		return fmt.Errorf("%q is not an IP address", pos[0])
	}
	addr = addr.Unmap()
	cfg, err := c.load(nil)
	if err != nil {
		return err
	}
	reasons, live, err := whyReasons(ctx, cfg, addr, *ext)
	if err != nil {
		return err
	}
	subject := addr.String()
	if *ext != "" {
		subject += " / extension " + *ext
	}
	if !live {
		fmt.Fprintln(e.stdout, "(server not running or not reachable: showing what is stored; rate limits are not shown)")
	}
	refusing := 0
	for _, r := range reasons {
		if r.Refuses {
			refusing++
		}
	}
	if refusing == 0 {
		fmt.Fprintf(e.stdout, "Nothing refuses %s right now.\n", subject)
	} else {
		fmt.Fprintf(e.stdout, "%s is refused by %d rule(s):\n", subject, refusing)
	}
	for _, r := range reasons {
		mark := "  "
		if r.Refuses {
			mark = "✗ "
		}
		line := fmt.Sprintf("%s[%s/%s] %s", mark, r.Stage, r.Rule, r.Message)
		if !r.Until.IsZero() {
			line += fmt.Sprintf(" (until %s, in %s)", r.Until.Local().Format(time.DateTime), time.Until(r.Until).Round(time.Second))
		}
		fmt.Fprintln(e.stdout, line)
		if r.Refuses && r.Lift != "" {
			fmt.Fprintf(e.stdout, "    lift: %s\n", r.Lift)
		}
	}
	return nil
}

func whyReasons(ctx context.Context, cfg *config.Config, addr netip.Addr, ext string) ([]policy.Reason, bool, error) {
	res, err := app.AskControl(cfg.ControlSocketPath(), app.ControlRequest{Op: "why", Addr: addr.String(), Account: ext})
	if err == nil {
		return res.Reasons, true, nil
	}
	// No server: read what is persisted.
	db, _, err := app.Open(ctx, cfg)
	if err != nil {
		return nil, false, err
	}
	defer db.Close()
	now := time.Now()
	var out []policy.Reason
	bans, err := db.ListBans(ctx, now)
	if err != nil {
		return nil, false, err
	}
	for _, b := range bans {
		if b.Addr == addr {
			out = append(out, policy.Reason{Stage: "ban", Rule: b.Rule, Refuses: true, Message: b.Reason, Until: b.End, Lift: "veilig ban remove " + addr.String()})
		}
	}
	allow, _ := config.Prefixes(cfg.Guard.AllowSources)
	if len(allow) > 0 && !slices.ContainsFunc(allow, func(p netip.Prefix) bool { return p.Contains(addr) }) {
		out = append(out, policy.Reason{Stage: "allowlist", Rule: "allow_sources", Refuses: true, Message: "outside guard.allow_sources", Lift: "add it to guard.allow_sources in the config"})
	}
	if ext != "" {
		locks, err := db.ListLocks(ctx, now)
		if err != nil {
			return nil, false, err
		}
		for _, l := range locks {
			switch {
			case l.Account != ext:
			case l.Source.IsValid() && l.Source == addr:
				out = append(out, policy.Reason{Stage: "lockout", Rule: policy.RuleSourceLock, Refuses: true, Message: "locked for " + addr.String() + " alone: " + l.Reason, Until: l.Until, Lift: "veilig ext unlock " + ext})
			case !l.Source.IsValid():
				out = append(out, policy.Reason{Stage: "lockout", Rule: "account_locked", Refuses: true, Message: l.Reason, Until: l.Until, Lift: "veilig ext unlock " + ext})
			}
		}
		x, err := db.Extension(ctx, ext)
		switch {
		case errors.Is(err, store.ErrNotFound):
			out = append(out, policy.Reason{Stage: "auth", Rule: "unknown_extension", Refuses: true, Message: "no such extension", Lift: "veilig ext add " + ext})
		case err != nil:
			return nil, false, err
		case len(x.AllowFrom) > 0 && !slices.ContainsFunc(x.AllowFrom, func(p netip.Prefix) bool { return p.Contains(addr) }):
			out = append(out, policy.Reason{Stage: "allowlist", Rule: "extension_allow_from", Refuses: true, Message: "outside the extension's allowed networks", Lift: "veilig ext set " + ext + " --allow-from CIDR[,CIDR]"})
		}
	}
	return out, false, nil
}
