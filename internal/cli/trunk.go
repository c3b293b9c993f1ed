package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/veilig/veilig/internal/store"
	"github.com/veilig/veilig/internal/trunk"
)

const trunkUsage = `usage:
  veilig trunk add NAME --host HOST [--port N] [--transport tls|tcp|udp] [--insecure-transport]
                   [--auth register --username U --secret-stdin | --auth ip --from CIDR[,CIDR]]
                   [--media srtp|rtp] [--server-name NAME] [--pin SHA256] [--ca-file F]
                   [--client-cert F --client-key F] [--did NUMBER=EXT ...] [--outbound]
  veilig trunk set NAME [same flags: only those given change]
  veilig trunk list
  veilig trunk remove NAME`

// runTrunk manages carrier trunks; a running server picks changes up
// within a few seconds.
func runTrunk(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		return errors.New("missing subcommand\n" + trunkUsage)
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("trunk "+sub, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var c common
	c.register(fs)
	host := fs.String("host", "", "carrier host name or IP address")
	port := fs.Int("port", 0, "carrier port (default 5061 for tls, 5060 otherwise)")
	transport := fs.String("transport", "tls", "tls, tcp or udp")
	insecure := fs.Bool("insecure-transport", false, "accept unencrypted signalling (tcp/udp); every audit reports it")
	authMode := fs.String("auth", "register", "register (Veilig registers with digest credentials) or ip (by source address)")
	username := fs.String("username", "", "digest user name at the carrier")
	secretStdin := fs.Bool("secret-stdin", false, "read the carrier secret from standard input")
	from := fs.String("from", "", "carrier source networks for --auth ip, CIDR[,CIDR]")
	mediaMode := fs.String("media", "srtp", "srtp, or rtp for a carrier without SRTP (recorded per call)")
	serverName := fs.String("server-name", "", "name the carrier certificate must carry (default: --host)")
	pin := fs.String("pin", "", "SHA-256 fingerprint of the carrier certificate, instead of chain checks")
	caFile := fs.String("ca-file", "", "CA certificates (PEM) that sign the carrier certificate")
	clientCert := fs.String("client-cert", "", "client certificate for mutual TLS")
	clientKey := fs.String("client-key", "", "key of the client certificate")
	outbound := fs.Bool("outbound", false, "carry outbound calls on this trunk")
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
	_, db, key, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	existing, err := db.ListTrunks(ctx)
	if err != nil {
		return err
	}
	find := func(name string) (store.Trunk, bool) {
		for _, t := range existing {
			if t.Name == name {
				return t, true
			}
		}
		return store.Trunk{}, false
	}
	switch sub {
	case "list":
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tHOST\tTRANSPORT\tAUTH\tMEDIA\tVERIFY\tOUTBOUND\tDIDS")
		for _, t := range existing {
			verify := "chain+name"
			if t.Pin != "" {
				verify = "pinned"
			}
			if t.Transport != "tls" {
				verify = "INSECURE " + t.Transport
			}
			var ds []string
			for num, ext := range t.DIDs {
				ds = append(ds, num+"->"+ext)
			}
			sort.Strings(ds)
			fmt.Fprintf(tw, "%s\t%s:%d\t%s\t%s\t%s\t%s\t%v\t%s\n", t.Name, t.Host, t.Port, t.Transport, t.Auth, t.Media, verify, t.Outbound, strings.Join(ds, ","))
		}
		return tw.Flush()
	case "remove":
		if err := db.DeleteTrunk(ctx, pos[0]); errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("trunk %s does not exist (see `veilig trunk list`)", pos[0])
		} else if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "Trunk %s removed.\n", pos[0])
		return nil
	}
	name := pos[0]
	t, exists := find(name)
	if sub == "add" && exists {
		return fmt.Errorf("trunk %s already exists (use `veilig trunk set %s ...`)", name, name)
	}
	if sub == "set" && !exists {
		return fmt.Errorf("trunk %s does not exist (use `veilig trunk add`)", name)
	}
	if sub == "add" {
		t = store.Trunk{Name: name}
	}
	apply := func(flagName string, f func()) {
		if sub == "add" || isSet(fs, flagName) {
			f()
		}
	}
	apply("host", func() { t.Host = *host })
	apply("port", func() { t.Port = *port })
	apply("transport", func() { t.Transport = *transport })
	apply("insecure-transport", func() { t.InsecureTransport = *insecure })
	apply("auth", func() { t.Auth = *authMode })
	apply("username", func() { t.Username = *username })
	apply("media", func() { t.Media = *mediaMode })
	apply("server-name", func() { t.ServerName = *serverName })
	apply("pin", func() { t.Pin = *pin })
	apply("ca-file", func() { t.CAFile = *caFile })
	apply("client-cert", func() { t.ClientCert = *clientCert })
	apply("client-key", func() { t.ClientKey = *clientKey })
	apply("outbound", func() { t.Outbound = *outbound })
	apply("from", func() {
		t.Addresses = nil
		for _, p := range strings.Split(*from, ",") {
			if p = strings.TrimSpace(p); p != "" {
				t.Addresses = append(t.Addresses, p)
			}
		}
	})
	if len(dids) > 0 {
		if t.DIDs == nil {
			t.DIDs = map[string]string{}
		}
		for _, d := range dids {
			num, ext, ok := strings.Cut(d, "=")
			if !ok || num == "" || ext == "" {
				return fmt.Errorf("--did %q: want NUMBER=EXT", d)
			}
			t.DIDs[num] = ext
		}
	}
	if *secretStdin {
		line, err := bufio.NewReader(e.stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read secret: %w", err)
		}
		if s := strings.TrimRight(line, "\r\n"); s != "" {
			t.Secret = trunk.SealSecret(key, name, s)
		} else {
			return errors.New("no secret on standard input")
		}
	}
	if err := trunk.Validate(t); err != nil {
		return err
	}
	if err := db.SaveTrunk(ctx, t); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Trunk %s saved.\n", name)
	if t.Transport != "tls" {
		fmt.Fprintf(e.stdout, "WARNING: trunk %s uses unencrypted %s signalling; the audit reports it.\n", name, t.Transport)
	}
	if t.Media == "rtp" {
		fmt.Fprintf(e.stdout, "WARNING: trunk %s carries plain RTP; call records mark that leg as unencrypted.\n", name)
	}
	return nil
}
