package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"
)

// runRegs lists the registered devices as the server last persisted them
// (bindings are written in batches within a fraction of a second).
func runRegs(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("regs", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var c common
	c.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	_, db, _, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	now := time.Now()
	bs, err := db.LoadBindings(ctx, now)
	if err != nil {
		return err
	}
	if *asJSON {
		type reg struct {
			Extension string    `json:"extension"`
			Contact   string    `json:"contact"`
			Source    string    `json:"source"`
			Transport string    `json:"transport"`
			UserAgent string    `json:"user_agent"`
			Expires   time.Time `json:"expires"`
		}
		out := make([]reg, 0, len(bs))
		for _, b := range bs {
			out = append(out, reg{b.Number, b.Contact, b.Source.String(), b.Transport, b.UserAgent, b.Expires})
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EXTENSION\tSOURCE\tTRANSPORT\tEXPIRES IN\tUSER AGENT\tCONTACT")
	for _, b := range bs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", b.Number, b.Source, b.Transport, b.Expires.Sub(now).Round(time.Second), b.UserAgent, b.Contact)
	}
	return tw.Flush()
}
