package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/veilig/veilig/internal/service"
)

const callsUsage = `usage:
  veilig calls [--limit N] [--party EXT] [--json]     call records, newest first
  veilig calls --live [--json]                       calls in progress
  veilig calls hangup ID                             end a call in progress (BYE on both legs)`

func runCalls(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("calls", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var c common
	c.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	live := fs.Bool("live", false, "list calls in progress instead of records")
	limit := fs.Int("limit", 50, "how many records, newest first")
	party := fs.String("party", "", "only calls from or to this extension or number")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 0:
	case len(pos) == 2 && pos[0] == "hangup":
	default:
		return errors.New(callsUsage)
	}
	s, err := c.connect(ctx, e)
	if err != nil {
		return err
	}
	defer s.close()
	if len(pos) == 2 {
		if _, err := service.OpHangup.Call(ctx, s.caller, service.CallRequest{ID: pos[1]}); err != nil {
			return explain(err)
		}
		fmt.Fprintf(e.stdout, "Call %s ended.\n", pos[1])
		return nil
	}
	if *live {
		calls, err := service.OpLiveCalls.Call(ctx, s.caller, struct{}{})
		if err != nil {
			return explain(err)
		}
		if *asJSON {
			return writeJSON(e, calls)
		}
		if len(calls) == 0 {
			fmt.Fprintln(e.stdout, "No calls in progress.")
			return nil
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tFROM\tTO\tSTATE\tDURATION\tCALLER LEG\tCALLEE LEG")
		for _, c := range calls {
			since := c.Started
			if !c.Answered.IsZero() {
				since = c.Answered
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.From, c.To, c.State, time.Since(since).Round(time.Second), c.CallerLeg, dash(c.CalleeLeg))
		}
		return tw.Flush()
	}
	rs, err := service.OpRecords.Call(ctx, s.caller, service.RecordsRequest{Limit: *limit, Party: *party})
	if err != nil {
		return explain(err)
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
			x := rec{ID: r.ID, From: r.From, To: r.To, Source: r.Source, StartedAt: r.StartedAt, EndedAt: r.EndedAt,
				Disposition: r.Disposition, Cause: r.Cause, CallerMedia: r.CallerMedia, CalleeMedia: r.CalleeMedia,
				MediaInClear: r.MediaInClear, E164: r.E164, Country: r.Country, Class: r.Class,
				EstimatedCost: r.EstimatedCost, Trunk: r.Trunk, Fraud: r.Fraud}
			if !r.AnsweredAt.IsZero() {
				t := r.AnsweredAt
				x.AnsweredAt = &t
			}
			out = append(out, x)
		}
		return writeJSON(e, out)
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
	var req service.EventsRequest
	fs.StringVar(&req.Type, "type", "", "only this event type (e.g. auth.failure), or a prefix ending in '.' (guard.)")
	fs.StringVar(&req.Account, "account", "", "only this extension")
	fs.StringVar(&req.Source, "source", "", "only this source address")
	fs.StringVar(&req.Severity, "severity", "", "only info, warning or alert")
	since := fs.Duration("since", 0, "only the last DURATION (e.g. 24h)")
	fs.IntVar(&req.Limit, "limit", 50, "how many events, newest first")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 || (len(pos) == 1 && pos[0] != "kinds") {
		return errors.New("usage: veilig events [--type T] [--account EXT] [--source ADDR] [--severity S] [--since D] [--limit N] [--json] | veilig events kinds")
	}
	if *since > 0 {
		req.Since = time.Now().Add(-*since)
	}
	s, err := c.connect(ctx, e)
	if err != nil {
		return err
	}
	defer s.close()
	if len(pos) == 1 {
		kinds, err := service.OpKinds.Call(ctx, s.caller, struct{}{})
		if err != nil {
			return explain(err)
		}
		if *asJSON {
			return writeJSON(e, kinds)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TYPE\tSEVERITY\tFIELDS\tMEANING")
		for _, k := range kinds {
			var fields []string
			for _, f := range k.Fields {
				fields = append(fields, f.Name)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.Name, k.Severity, dash(strings.Join(fields, ",")), k.Doc)
		}
		return tw.Flush()
	}
	p, err := service.OpEvents.Call(ctx, s.caller, req)
	if err != nil {
		return explain(err)
	}
	if *asJSON {
		return writeJSON(e, p.Events)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tTYPE\tSEVERITY\tSOURCE\tACCOUNT\tMESSAGE")
	for _, ev := range p.Events {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ev.Time.Local().Format("2006-01-02 15:04:05"), ev.Type, ev.Severity, ev.Source, ev.Account, ev.Message)
	}
	return tw.Flush()
}

func runAuditLog(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("auditlog", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var c common
	c.register(fs)
	var req service.AuditRequest
	fs.StringVar(&req.Actor, "actor", "", "only changes by this actor")
	fs.StringVar(&req.Action, "action", "", "only this action (extension.create), or a prefix ending in '.'")
	fs.StringVar(&req.Target, "target", "", "only changes to this target")
	fs.IntVar(&req.Limit, "limit", 50, "how many entries, newest first")
	checkpoint := fs.String("checkpoint", "", "verify: a checkpoint `file` kept elsewhere (from `veilig auditlog checkpoint` or an audit.checkpoint event)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	sub := "list"
	if len(pos) == 1 {
		sub = pos[0]
	}
	if len(pos) > 1 || (sub != "list" && sub != "verify" && sub != "checkpoint") {
		return errors.New("usage: veilig auditlog [list] [--actor A] [--action X] [--target T] [--limit N] [--json]\n       veilig auditlog verify [--checkpoint FILE]\n       veilig auditlog checkpoint")
	}
	var cpNote string
	if *checkpoint != "" {
		b, err := os.ReadFile(*checkpoint)
		if err != nil {
			return fmt.Errorf("--checkpoint: %w", err)
		}
		cpNote = string(b)
	}
	s, err := c.connect(ctx, e)
	if err != nil {
		return err
	}
	defer s.close()
	switch sub {
	case "verify":
		res, err := service.OpAuditVerify.Call(ctx, s.caller, service.VerifyRequest{Checkpoint: cpNote})
		if err != nil {
			return explain(err)
		}
		if *asJSON {
			if err := writeJSON(e, res); err != nil {
				return err
			}
		}
		if !res.OK {
			if res.FirstBad > 0 {
				return fmt.Errorf("audit log FAILED verification at entry %d: %s (%s)", res.FirstBad, res.Problem, res.Detail)
			}
			return fmt.Errorf("audit log FAILED verification: %s (%s)", res.Problem, res.Detail)
		}
		if !*asJSON {
			what := "hash chain intact"
			if cpNote != "" {
				what += " and consistent with the checkpoint"
			}
			fmt.Fprintf(e.stdout, "Audit log OK: %d entries, %s; head %s.\n", res.Entries, what, res.Head)
		}
		return nil
	case "checkpoint":
		cp, err := service.OpAuditCheckpoint.Call(ctx, s.caller, struct{}{})
		if err != nil {
			return explain(err)
		}
		if *asJSON {
			return writeJSON(e, cp)
		}
		fmt.Fprint(e.stdout, cp.Note)
		fmt.Fprintf(e.stderr, "(%d entries; verifier key %s. Keep this note off the machine, then: veilig auditlog verify --checkpoint FILE)\n", cp.Entries, cp.VerifierKey)
		return nil
	}
	es, err := service.OpAudit.Call(ctx, s.caller, req)
	if err != nil {
		return explain(err)
	}
	if *asJSON {
		return writeJSON(e, es)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tACTOR\tCHANNEL\tACTION\tTARGET")
	for _, a := range es {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", a.Seq, a.Time.Local().Format(time.DateTime), a.Actor, a.Channel, a.Action, a.Target)
	}
	return tw.Flush()
}
