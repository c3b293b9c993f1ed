package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/veilig/veilig/internal/service"
)

const extUsage = `usage:
  veilig ext add NUMBER [--name NAME] [--secret-stdin]
  veilig ext list
  veilig ext remove NUMBER
  veilig ext passwd NUMBER [--secret-stdin]
  veilig ext set NUMBER [--name NAME] [--allow-from CIDR[,CIDR]] [--class CLASS] [--caller-ids N[,N]]   (--allow-from "" allows anywhere)
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
	var secret string
	if (sub == "add" || sub == "passwd") && *fromStdin {
		if secret, err = readSecret(e.stdin); err != nil {
			return err
		}
	}
	var entries []service.ImportEntry
	if sub == "import" {
		if entries, err = readImport(pos[0]); err != nil {
			return err
		}
	}
	s, err := c.connect(ctx, e)
	if err != nil {
		return err
	}
	defer s.close()

	switch sub {
	case "add":
		res, err := service.OpAddExtension.Call(ctx, s.caller, service.AddExtensionRequest{Number: pos[0], Name: *name, Secret: secret})
		if err != nil {
			return explain(err)
		}
		fmt.Fprintf(e.stdout, "Extension %s created in domain %s.\n", pos[0], res.Realm)
		printSecret(e, pos[0], res.Secret)
	case "passwd":
		res, err := service.OpSetSecret.Call(ctx, s.caller, service.SetSecretRequest{Number: pos[0], Secret: secret})
		if err != nil {
			return explain(err)
		}
		fmt.Fprintf(e.stdout, "Secret of extension %s changed.\n", pos[0])
		printSecret(e, pos[0], res.Secret)
	case "list":
		xs, err := service.OpListExtensions.Call(ctx, s.caller, service.ListExtensionsRequest{})
		if err != nil {
			return explain(err)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NUMBER\tNAME\tCLASS\tALLOW FROM\tDEVICES\tSTATE\tCREATED")
		for _, x := range xs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", x.Number, dash(x.Name), dash(x.Class), dash(prefixList(x)),
				x.Devices, extState(x), x.CreatedAt.Local().Format("2006-01-02 15:04"))
		}
		return tw.Flush()
	case "remove":
		if _, err := service.OpRemoveExtension.Call(ctx, s.caller, service.ExtensionRequest{Number: pos[0]}); err != nil {
			return explain(err)
		}
		fmt.Fprintf(e.stdout, "Extension %s removed; its registrations are gone.\n", pos[0])
	case "set":
		req := service.SetExtensionRequest{Number: pos[0]}
		if isSet(fs, "name") {
			req.Name = name
		}
		if isSet(fs, "class") {
			req.Class = class
		}
		if isSet(fs, "allow-from") {
			l := splitList(*allowFrom)
			req.AllowFrom = &l
		}
		if isSet(fs, "caller-ids") {
			l := splitList(*callerIDs)
			req.CallerIDs = &l
		}
		if req.Name == nil && req.Class == nil && req.AllowFrom == nil && req.CallerIDs == nil {
			return errors.New("nothing to set: give --name, --allow-from, --class or --caller-ids")
		}
		x, err := service.OpSetExtension.Call(ctx, s.caller, req)
		if err != nil {
			return explain(err)
		}
		fmt.Fprintf(e.stdout, "Extension %s updated.\n", x.Number)
		if req.AllowFrom != nil {
			if len(x.AllowFrom) > 0 {
				fmt.Fprintf(e.stdout, "It may register and call only from %s.\n", prefixList(x))
			} else {
				fmt.Fprintln(e.stdout, "It may register and call from anywhere the server serves.")
			}
		}
		if req.CallerIDs != nil {
			if len(x.CallerIDs) > 0 {
				fmt.Fprintf(e.stdout, "It may present %s as its caller-ID outside.\n", strings.Join(x.CallerIDs, ", "))
			} else {
				fmt.Fprintln(e.stdout, "It presents only its own number outside.")
			}
		}
	case "unlock":
		if _, err := service.OpUnlock.Call(ctx, s.caller, service.ExtensionRequest{Number: pos[0]}); err != nil {
			return explain(err)
		}
		fmt.Fprintf(e.stdout, "Extension %s unlocked.\n", pos[0])
	case "lift":
		if _, err := service.OpLift.Call(ctx, s.caller, service.ExtensionRequest{Number: pos[0]}); err != nil {
			return explain(err)
		}
		if s.live {
			fmt.Fprintf(e.stdout, "Outbound calling of %s lifted.\n", pos[0])
		} else {
			fmt.Fprintf(e.stdout, "Suspension of %s removed; the server applies it when it starts.\n", pos[0])
		}
	case "import":
		res, err := service.OpImport.Call(ctx, s.caller, service.ImportRequest{Entries: entries})
		if err != nil {
			return explain(err)
		}
		fmt.Fprintf(e.stdout, "Imported %d extensions (%d new, %d updated).\n", res.Created+res.Updated, res.Created, res.Updated)
	}
	return nil
}

func printSecret(e env, number, secret string) {
	if secret != "" {
		fmt.Fprintf(e.stdout, "SIP secret for %s (shown once): %s\n", number, secret)
	}
}

func extState(x service.Extension) string {
	var st []string
	if !x.LockedUntil.IsZero() {
		st = append(st, "locked until "+x.LockedUntil.Local().Format(time.DateTime))
	}
	if x.Suspended != "" {
		st = append(st, "outbound suspended")
	}
	if len(st) == 0 {
		return "ok"
	}
	return strings.Join(st, ", ")
}

func prefixList(x service.Extension) string {
	s := make([]string, len(x.AllowFrom))
	for i, p := range x.AllowFrom {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func splitList(s string) []string {
	out := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// readSecret reads a chosen secret (checked by the password policy in the
// service) from the first line of stdin.
func readSecret(stdin io.Reader) (string, error) {
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read secret from stdin: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no secret on standard input")
	}
	return line, nil
}

// readImport reads NUMBER:SECRET lines; every secret still passes the
// password policy.
func readImport(path string) ([]service.ImportEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []service.ImportEntry
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		number, secret, ok := strings.Cut(t, ":")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want NUMBER:SECRET", path, line)
		}
		out = append(out, service.ImportEntry{Number: number, Secret: secret})
	}
	return out, sc.Err()
}
