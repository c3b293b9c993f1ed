package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/veilig/veilig/internal/service"
)

// runRegs lists the registered devices: the server's live view when it
// runs (with each connection's state), the stored bindings otherwise.
func runRegs(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("regs", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var c common
	c.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	s, err := c.connect(ctx, e)
	if err != nil {
		return err
	}
	defer s.close()
	regs, err := service.OpRegistrations.Call(ctx, s.caller, struct{}{})
	if err != nil {
		return explain(err)
	}
	if *asJSON {
		return writeJSON(e, regs)
	}
	if !s.live {
		fmt.Fprintln(e.stdout, "(server not running: stored registrations; connections are closed until devices register again)")
	}
	now := time.Now()
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EXTENSION\tSTATE\tSOURCE\tTRANSPORT\tEXPIRES IN\tUSER AGENT\tCONTACT")
	for _, r := range regs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Extension, r.State, r.Source, r.Transport, r.Expires.Sub(now).Round(time.Second), r.UserAgent, r.Contact)
	}
	return tw.Flush()
}

// writeJSON prints v as indented JSON: every --json output is one JSON
// document with snake_case keys.
func writeJSON(e env, v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
