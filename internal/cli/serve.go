package cli

import (
	"context"
	"flag"
	"fmt"

	"github.com/veilig/veilig/internal/app"
)

func runServe(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var c common
	c.register(fs)
	domain := fs.String("sip-domain", "", "SIP domain and digest realm (sip.domain)")
	tlsListen := fs.String("sip-tls", "", "SIP over TLS listen address (sip.tls_listen)")
	tcpListen := fs.String("sip-tcp", "", "SIP over TCP listen address, insecure (sip.tcp_listen)")
	udpListen := fs.String("sip-udp", "", "SIP over UDP listen address, insecure (sip.udp_listen)")
	cert := fs.String("tls-cert", "", "TLS certificate file (tls.cert_file)")
	key := fs.String("tls-key", "", "TLS key file (tls.key_file)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("unexpected argument %q", pos[0])
	}
	cfg, err := c.load(e, map[string]string{
		"sip.domain": *domain, "sip.tls_listen": *tlsListen, "sip.tcp_listen": *tcpListen,
		"sip.udp_listen": *udpListen, "tls.cert_file": *cert, "tls.key_file": *key,
	})
	if err != nil {
		return err
	}
	return app.Serve(ctx, cfg, e.stdout, newLogger(cfg, e.stderr))
}

func runVersion(ctx context.Context, e env, args []string) error {
	fmt.Fprintf(e.stdout, "veilig %s\n", app.Version)
	return nil
}
