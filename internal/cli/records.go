package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/veilig/veilig/internal/store"
)

func runCalls(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("calls", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var c common
	c.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	limit := fs.Int("limit", 50, "how many records, newest first")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	_, db, _, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	rs, err := db.ListCallRecords(ctx, *limit)
	if err != nil {
		return err
	}
	if *asJSON {
		type rec struct {
			ID           string     `json:"id"`
			From         string     `json:"from"`
			To           string     `json:"to"`
			Source       string     `json:"source"`
			StartedAt    time.Time  `json:"started_at"`
			AnsweredAt   *time.Time `json:"answered_at"`
			EndedAt      time.Time  `json:"ended_at"`
			Disposition  string     `json:"disposition"`
			Cause        string     `json:"cause"`
			CallerMedia  string     `json:"caller_media"`
			CalleeMedia  string     `json:"callee_media"`
			MediaInClear bool       `json:"media_in_clear"`

			E164          string  `json:"e164,omitempty"`
			Country       string  `json:"country,omitempty"`
			Class         string  `json:"class,omitempty"`
			EstimatedCost float64 `json:"estimated_cost,omitempty"`
			Trunk         string  `json:"trunk,omitempty"`
			Fraud         string  `json:"fraud,omitempty"`
		}
		out := make([]rec, 0, len(rs))
		for _, r := range rs {
			x := rec{ID: r.ID, From: r.From, To: r.To, StartedAt: r.StartedAt, EndedAt: r.EndedAt,
				Disposition: r.Disposition, Cause: r.Cause, CallerMedia: r.CallerMedia, CalleeMedia: r.CalleeMedia,
				MediaInClear: r.MediaInClear, E164: r.E164, Country: r.Country, Class: r.Class,
				EstimatedCost: r.EstimatedCost, Trunk: r.Trunk, Fraud: r.Fraud}
			if r.Source.IsValid() {
				x.Source = r.Source.String()
			}
			if !r.AnsweredAt.IsZero() {
				t := r.AnsweredAt
				x.AnsweredAt = &t
			}
			out = append(out, x)
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STARTED\tFROM\tTO\tDISPOSITION\tDURATION\tCALLER MEDIA\tCALLEE MEDIA\tCAUSE")
	for _, r := range rs {
		dur := "-"
		if !r.AnsweredAt.IsZero() {
			dur = r.EndedAt.Sub(r.AnsweredAt).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.StartedAt.Local().Format("2006-01-02 15:04:05"),
			r.From, r.To, r.Disposition, dur, r.CallerMedia, r.CalleeMedia, r.Cause)
	}
	return tw.Flush()
}

func runEvents(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("events", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var c common
	c.register(fs)
	typ := fs.String("type", "", "only this event type (e.g. auth.failure)")
	acct := fs.String("account", "", "only this extension")
	limit := fs.Int("limit", 50, "how many events, newest first")
	asJSON := fs.Bool("json", false, "print JSON lines")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	_, db, _, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	evs, err := db.ListEvents(ctx, store.EventFilter{Type: *typ, Account: *acct, Limit: *limit})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		for _, ev := range evs {
			if err := enc.Encode(ev); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tTYPE\tSEVERITY\tSOURCE\tACCOUNT\tMESSAGE")
	for _, ev := range evs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ev.Time.Local().Format("2006-01-02 15:04:05"), ev.Type, ev.Severity, ev.Source, ev.Account, ev.Message)
	}
	return tw.Flush()
}
