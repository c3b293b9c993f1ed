package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/veilig/veilig/internal/accounts"
	"github.com/veilig/veilig/internal/app"
	"github.com/veilig/veilig/internal/auth"
	"github.com/veilig/veilig/internal/config"
	"github.com/veilig/veilig/internal/store"
)

const extUsage = `usage:
  veilig ext add NUMBER [--name NAME] [--secret-stdin]
  veilig ext list
  veilig ext remove NUMBER
  veilig ext passwd NUMBER [--secret-stdin]
  veilig ext set NUMBER [--name NAME] [--allow-from CIDR[,CIDR]] [--class CLASS]   (--allow-from "" allows anywhere)
  veilig ext unlock NUMBER
  veilig ext lift NUMBER        (end a toll-fraud suspension of outbound calling)
  veilig ext import FILE        (lines of NUMBER:SECRET; for provisioning and load tests)`

func runExt(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		return errors.New("missing subcommand\n" + extUsage)
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("ext "+sub, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var c common
	c.register(fs)
	name := fs.String("name", "", "display name")
	fromStdin := fs.Bool("secret-stdin", false, "read the secret from standard input instead of generating one")
	allowFrom := fs.String("allow-from", "", "networks the extension may register and call from, CIDR[,CIDR]")
	class := fs.String("class", "", "class of service for outbound calls: internal, national, eu or international")
	callerIDs := fs.String("caller-ids", "", "numbers the extension may present on outbound calls (P-Preferred-Identity), N[,N]")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	want := map[string]int{"add": 1, "list": 0, "remove": 1, "passwd": 1, "import": 1, "set": 1, "unlock": 1, "lift": 1}
	n, ok := want[sub]
	if !ok {
		return fmt.Errorf("unknown subcommand %q\n%s", sub, extUsage)
	}
	if len(pos) != n {
		return fmt.Errorf("ext %s takes %d argument(s), got %d\n%s", sub, n, len(pos), extUsage)
	}
	cfg, db, key, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	realm := cfg.SIP.Domain

	switch sub {
	case "add", "passwd":
		number := pos[0]
		if err := accounts.ValidNumber(number); err != nil {
			return err
		}
		secret, generated, err := obtainSecret(e.stdin, *fromStdin)
		if err != nil {
			return err
		}
		if sub == "add" {
			err = accounts.Create(ctx, db, key, realm, number, *name, secret)
		} else {
			err = accounts.SetSecret(ctx, db, key, realm, number, secret)
		}
		if err != nil {
			return err
		}
		if sub == "add" {
			fmt.Fprintf(e.stdout, "Extension %s created in domain %s.\n", number, realm)
		} else {
			fmt.Fprintf(e.stdout, "Secret of extension %s changed.\n", number)
		}
		if generated {
			fmt.Fprintf(e.stdout, "SIP secret for %s (shown once): %s\n", number, secret)
		}
		return nil
	case "list":
		exts, err := db.ListExtensions(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NUMBER\tNAME\tDOMAIN\tCREATED")
		for _, x := range exts {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", x.Number, x.Name, x.Realm, x.CreatedAt.Format("2006-01-02 15:04"))
		}
		return tw.Flush()
	case "remove":
		err := db.DeleteExtension(ctx, pos[0])
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("extension %s does not exist (see `veilig ext list`)", pos[0])
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "Extension %s removed; its registrations are gone.\n", pos[0])
		return nil
	case "set":
		x, err := db.Extension(ctx, pos[0])
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("extension %s does not exist (see `veilig ext list`)", pos[0])
		}
		if err != nil {
			return err
		}
		changed := false
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "name":
				x.Name, changed = *name, true
			case "allow-from":
				changed = true
			case "class":
				x.Class, changed = *class, true
			case "caller-ids":
				x.CallerIDs, changed = nil, true
				for _, n := range strings.Split(*callerIDs, ",") {
					if n = strings.TrimSpace(n); n != "" {
						x.CallerIDs = append(x.CallerIDs, n)
					}
				}
			}
		})
		if isSet(fs, "allow-from") {
			var list []string
			for _, p := range strings.Split(*allowFrom, ",") {
				if p = strings.TrimSpace(p); p != "" {
					list = append(list, p)
				}
			}
			if x.AllowFrom, err = config.Prefixes(list); err != nil {
				return fmt.Errorf("--allow-from: %w", err)
			}
		}
		if !changed {
			return errors.New("nothing to set: give --name, --allow-from, --class or --caller-ids")
		}
		switch x.Class {
		case "", "internal", "national", "eu", "international":
		default:
			return fmt.Errorf("--class %q: use internal, national, eu or international", x.Class)
		}
		if err := db.UpdateExtension(ctx, x); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "Extension %s updated.\n", x.Number)
		if len(x.AllowFrom) > 0 {
			fmt.Fprintf(e.stdout, "It may register and call only from %s.\n", *allowFrom)
		}
		return nil
	case "unlock":
		err := db.DeleteLock(ctx, pos[0])
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("extension %s is not locked", pos[0])
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "Extension %s unlocked.\n", pos[0])
		return nil
	case "lift":
		err := db.DeleteSuspension(ctx, pos[0])
		if errors.Is(err, store.ErrNotFound) {
			err = nil // may be suspended in the running server only
		}
		if err != nil {
			return err
		}
		if _, cerr := app.AskControl(cfg.ControlSocketPath(), app.ControlRequest{Op: "lift", Account: pos[0]}); cerr != nil {
			fmt.Fprintf(e.stdout, "Suspension of %s removed from the store; the server is not reachable and applies it at its next start.\n", pos[0])
			return nil
		}
		fmt.Fprintf(e.stdout, "Outbound calling of %s lifted.\n", pos[0])
		return nil
	case "import":
		return importExtensions(ctx, e, pos[0], func(number, secret string) error {
			err := accounts.Create(ctx, db, key, realm, number, "", secret)
			if err != nil && strings.Contains(err.Error(), "already exists") {
				return accounts.SetSecret(ctx, db, key, realm, number, secret)
			}
			return err
		})
	}
	return nil
}

// obtainSecret reads a chosen secret (checked by policy later) or makes one.
func obtainSecret(stdin io.Reader, fromStdin bool) (secret string, generated bool, err error) {
	if !fromStdin {
		s, err := auth.GenerateSecret()
		return s, true, err
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", false, fmt.Errorf("read secret from stdin: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", false, errors.New("no secret on standard input")
	}
	return line, false, nil
}

func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}
