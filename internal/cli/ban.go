package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/veilig/veilig/internal/service"
)

const banUsage = `usage:
  veilig ban list
  veilig ban add ADDR|CIDR [--for DURATION] [--reason TEXT]   (a network: 203.0.113.0/24)
  veilig ban remove ADDR|CIDR`

// runBan manages source bans.
func runBan(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		return errors.New("missing subcommand\n" + banUsage)
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("ban "+sub, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var c common
	c.register(fs)
	dur := fs.Duration("for", time.Hour, "how long the ban lasts")
	reason := fs.String("reason", "banned by an operator", "why, for the record")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	want := map[string]int{"list": 0, "add": 1, "remove": 1}
	n, ok := want[sub]
	if !ok {
		return fmt.Errorf("unknown subcommand %q\n%s", sub, banUsage)
	}
	if len(pos) != n {
		return fmt.Errorf("ban %s takes %d argument(s), got %d\n%s", sub, n, len(pos), banUsage)
	}
	if sub == "add" && *dur <= 0 {
		return fmt.Errorf("--for must be positive, got %s", *dur)
	}
	s, err := c.connect(ctx, e)
	if err != nil {
		return err
	}
	defer s.close()
	switch sub {
	case "list":
		bans, err := service.OpListBans.Call(ctx, s.caller, struct{}{})
		if err != nil {
			return explain(err)
		}
		if len(bans) == 0 {
			fmt.Fprintln(e.stdout, "No bans in force.")
			return nil
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ADDRESS\tRULE\tSINCE\tUNTIL\tREASON\tCAUSE")
		for _, b := range bans {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", b.Addr, b.Rule, b.Start.Local().Format(time.DateTime),
				b.End.Local().Format(time.DateTime), b.Reason, strings.Join(b.Cause, "; "))
		}
		return tw.Flush()
	case "add":
		b, err := service.OpAddBan.Call(ctx, s.caller, service.AddBanRequest{Addr: pos[0], For: *dur, Reason: *reason})
		if err != nil {
			return explain(err)
		}
		fmt.Fprintf(e.stdout, "Banned %s until %s. Lift it with: veilig ban remove %s\n", b.Addr, b.End.Local().Format(time.DateTime), b.Addr)
	default:
		if _, err := service.OpRemoveBan.Call(ctx, s.caller, service.AddrRequest{Addr: pos[0]}); err != nil {
			return explain(err)
		}
		fmt.Fprintf(e.stdout, "Ban on %s lifted.\n", strings.TrimSpace(pos[0]))
	}
	return nil
}
