package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/veilig/veilig/internal/service"
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
	s, err := c.connect(ctx, e)
	if err != nil {
		return err
	}
	defer s.close()
	res, err := service.OpWhy.Call(ctx, s.caller, service.WhyRequest{Addr: pos[0], Extension: *ext})
	if err != nil {
		return explain(err)
	}
	subject := pos[0]
	if *ext != "" {
		subject += " / extension " + *ext
	}
	if !res.Live {
		fmt.Fprintln(e.stdout, "(server not running or not reachable: showing what is stored; rate limits are not shown)")
	}
	refusing := 0
	for _, r := range res.Reasons {
		if r.Refuses {
			refusing++
		}
	}
	if refusing == 0 {
		fmt.Fprintf(e.stdout, "Nothing refuses %s right now.\n", subject)
	} else {
		fmt.Fprintf(e.stdout, "%s is refused by %d rule(s):\n", subject, refusing)
	}
	for _, r := range res.Reasons {
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
