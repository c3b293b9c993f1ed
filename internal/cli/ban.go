package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/veilig/veilig/internal/store"
)

const banUsage = `usage:
  veilig ban list
  veilig ban add ADDR [--for DURATION] [--reason TEXT]
  veilig ban remove ADDR`

// runBan manages source bans in the store; a running server applies a
// change within a second.
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
	var addr netip.Addr
	if n == 1 {
		if addr, err = netip.ParseAddr(pos[0]); err != nil {
			return fmt.Errorf("%q is not an IP address (a ban names one source address)", pos[0])
		}
		addr = addr.Unmap()
	}
	_, db, _, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	now := time.Now().UTC()
	switch sub {
	case "list":
		bans, err := db.ListBans(ctx, now)
		if err != nil {
			return err
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
		if *dur <= 0 {
			return fmt.Errorf("--for must be positive, got %s", *dur)
		}
		b := store.Ban{Addr: addr, Rule: "manual", Reason: *reason, Cause: []string{"veilig ban add"}, Start: now, End: now.Add(*dur)}
		if err := db.SaveBan(ctx, b); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "Banned %s until %s. Lift it with: veilig ban remove %s\n", addr, b.End.Local().Format(time.DateTime), addr)
		return nil
	default:
		err := db.DeleteBan(ctx, addr)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%s is not banned (see `veilig ban list`)", addr)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "Ban on %s lifted.\n", addr)
		return nil
	}
}
