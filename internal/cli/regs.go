package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/veilig/veilig/internal/app"
)

// runRegs lists the registered devices as the server persisted them
// (before answering each REGISTER), and whether each can be reached: a
// TLS/TCP device whose connection is gone (after a restart, until it
// registers again) is "disconnected". The running server says which
// connections are up; without one, no TLS/TCP device is.
func runRegs(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("regs", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var c common
	c.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	cfg, db, _, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	now := time.Now()
	bs, err := db.LoadBindings(ctx, now)
	if err != nil {
		return err
	}
	connected := map[string]bool{}
	res, cerr := app.AskControl(cfg.ControlSocketPath(), app.ControlRequest{Op: "regs"})
	for _, b := range res.Bindings {
		connected[b.Extension+"\x00"+b.Contact] = b.Connected
	}
	state := func(number, contact, transport string) string {
		switch {
		case transport == "udp" && cerr == nil:
			return "registered"
		case cerr != nil:
			if transport == "udp" {
				return "registered (server not running)"
			}
			return "disconnected (server not running)"
		case connected[number+"\x00"+contact]:
			return "registered"
		}
		return "disconnected"
	}
	if *asJSON {
		type reg struct {
			Extension string    `json:"extension"`
			Contact   string    `json:"contact"`
			Source    string    `json:"source"`
			Transport string    `json:"transport"`
			UserAgent string    `json:"user_agent"`
			Expires   time.Time `json:"expires"`
			State     string    `json:"state"`
		}
		out := make([]reg, 0, len(bs))
		for _, b := range bs {
			out = append(out, reg{b.Number, b.Contact, b.Source.String(), b.Transport, b.UserAgent, b.Expires, state(b.Number, b.Contact, b.Transport)})
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EXTENSION\tSTATE\tSOURCE\tTRANSPORT\tEXPIRES IN\tUSER AGENT\tCONTACT")
	for _, b := range bs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", b.Number, state(b.Number, b.Contact, b.Transport), b.Source, b.Transport, b.Expires.Sub(now).Round(time.Second), b.UserAgent, b.Contact)
	}
	return tw.Flush()
}
