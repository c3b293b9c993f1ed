package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/veilig/veilig/internal/service"
)

const trunkUsage = `usage:
  veilig trunk add NAME --host HOST [--port N] [--transport tls|tcp|udp] [--insecure-transport]
                   [--auth register --username U --secret-stdin | --auth ip --from CIDR[,CIDR]]
                   [--media srtp|rtp] [--server-name NAME] [--pin SHA256] [--ca-file F]
                   [--client-cert F --client-key F] [--did NUMBER=EXT ...] [--outbound]
  veilig trunk set NAME [same flags: only those given change]
  veilig trunk list
  veilig trunk remove NAME`

// runTrunk manages carrier trunks.
func runTrunk(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		return errors.New("missing subcommand\n" + trunkUsage)
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("trunk "+sub, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var c common
	c.register(fs)
	var req service.TrunkRequest
	fs.StringVar(&req.Host, "host", "", "carrier host name or IP address")
	fs.IntVar(&req.Port, "port", 0, "carrier port (default 5061 for tls, 5060 otherwise)")
	fs.StringVar(&req.Transport, "transport", "tls", "tls, tcp or udp")
	fs.BoolVar(&req.InsecureTransport, "insecure-transport", false, "accept unencrypted signalling (tcp/udp); every audit reports it")
	fs.StringVar(&req.Auth, "auth", "register", "register (Veilig registers with digest credentials) or ip (by source address)")
	fs.StringVar(&req.Username, "username", "", "digest user name at the carrier")
	secretStdin := fs.Bool("secret-stdin", false, "read the carrier secret from standard input")
	from := fs.String("from", "", "carrier source networks for --auth ip, CIDR[,CIDR]")
	fs.StringVar(&req.Media, "media", "srtp", "srtp, or rtp for a carrier without SRTP (recorded per call)")
	fs.StringVar(&req.ServerName, "server-name", "", "name the carrier certificate must carry (default: --host)")
	fs.StringVar(&req.Pin, "pin", "", "SHA-256 fingerprint of the carrier certificate, instead of chain checks")
	fs.StringVar(&req.CAFile, "ca-file", "", "CA certificates (PEM) that sign the carrier certificate")
	fs.StringVar(&req.ClientCert, "client-cert", "", "client certificate for mutual TLS")
	fs.StringVar(&req.ClientKey, "client-key", "", "key of the client certificate")
	fs.BoolVar(&req.Outbound, "outbound", false, "carry outbound calls on this trunk")
	var dids multi
	fs.Var(&dids, "did", "route an inbound number to an extension, NUMBER=EXT (repeatable)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	want := map[string]int{"add": 1, "set": 1, "list": 0, "remove": 1}
	n, ok := want[sub]
	if !ok {
		return fmt.Errorf("unknown subcommand %q\n%s", sub, trunkUsage)
	}
	if len(pos) != n {
		return fmt.Errorf("trunk %s takes %d argument(s), got %d\n%s", sub, n, len(pos), trunkUsage)
	}
	if n == 1 {
		req.Name = pos[0]
	}
	req.Addresses = splitList(*from)
	for _, d := range dids {
		num, ext, ok := strings.Cut(d, "=")
		if !ok || num == "" || ext == "" {
			return fmt.Errorf("--did %q: want NUMBER=EXT", d)
		}
		if req.DIDs == nil {
			req.DIDs = map[string]string{}
		}
		req.DIDs[num] = ext
	}
	if *secretStdin {
		if req.Secret, err = readSecret(e.stdin); err != nil {
			return err
		}
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "config", "data-dir", "set", "secret-stdin", "did":
		case "from":
			req.Set = append(req.Set, "addresses")
		default:
			req.Set = append(req.Set, f.Name)
		}
	})
	s, err := c.connect(ctx, e)
	if err != nil {
		return err
	}
	defer s.close()
	var t service.Trunk
	switch sub {
	case "list":
		ts, err := service.OpListTrunks.Call(ctx, s.caller, struct{}{})
		if err != nil {
			return explain(err)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tHOST\tTRANSPORT\tAUTH\tMEDIA\tVERIFY\tOUTBOUND\tDIDS")
		for _, t := range ts {
			fmt.Fprintf(tw, "%s\t%s:%d\t%s\t%s\t%s\t%s\t%v\t%s\n", t.Name, t.Host, t.Port, t.Transport, t.Auth, t.Media, t.Verify, t.Outbound, strings.Join(service.SortedDIDs(t), ","))
		}
		return tw.Flush()
	case "remove":
		if _, err := service.OpRemoveTrunk.Call(ctx, s.caller, service.NameRequest{Name: pos[0]}); err != nil {
			return explain(err)
		}
		fmt.Fprintf(e.stdout, "Trunk %s removed.\n", pos[0])
		return nil
	case "add":
		t, err = service.OpAddTrunk.Call(ctx, s.caller, req)
	default:
		t, err = service.OpSetTrunk.Call(ctx, s.caller, req)
	}
	if err != nil {
		return explain(err)
	}
	fmt.Fprintf(e.stdout, "Trunk %s saved.\n", t.Name)
	if t.Transport != "tls" {
		fmt.Fprintf(e.stdout, "WARNING: trunk %s uses unencrypted %s signalling; the audit reports it.\n", t.Name, t.Transport)
	}
	if t.Media == "rtp" {
		fmt.Fprintf(e.stdout, "WARNING: trunk %s carries plain RTP; call records mark that leg as unencrypted.\n", t.Name)
	}
	return nil
}
