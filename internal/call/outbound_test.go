package call

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/veilig/veilig/internal/datakey"
	"github.com/veilig/veilig/internal/sipedge"
	"github.com/veilig/veilig/internal/store"
	"github.com/veilig/veilig/internal/tollfraud"
	"github.com/veilig/veilig/internal/trunk"
)

type trunkRows []store.Trunk

func (r trunkRows) ListTrunks(context.Context) ([]store.Trunk, error) { return r, nil }

// fakeTrunks is the carrier trunks with a connection to the carrier that
// needs no dialling.
type fakeTrunks struct {
	*trunk.Table
	conn sipedge.Conn
}

func (f fakeTrunks) Conn(context.Context, *trunk.Trunk) (sipedge.Conn, error) { return f.conn, nil }

// outboundBench is a bench whose 1001 may call national numbers through
// the trunk "carrier" (digest credentials carrier-user / its secret).
func outboundBench(t *testing.T) (*bench, *fakeConn) {
	t.Helper()
	key, err := datakey.New(make([]byte, datakey.Size))
	if err != nil {
		t.Fatal(err)
	}
	tb, err := trunk.Load(t.Context(), trunkRows{{
		Name: "carrier", Host: "127.0.0.80", Transport: "tls", Auth: "register", Username: "carrier-user",
		Secret: trunk.SealSecret(key, "carrier", "Carrier-Secret-1"), Media: "srtp", Outbound: true,
	}}, key, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := tollfraud.Default("NL")
	cfg.BusinessHours.Enabled = false
	guard, err := tollfraud.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	carrier := newConn("127.0.0.80:5061")
	b := newBench(t, 0, func(o *Options) {
		o.Trunks = fakeTrunks{Table: tb, conn: carrier}
		o.Fraud = guard
		o.Class = func(string) string { return string(tollfraud.National) }
	})
	return b, carrier
}

// TestOutboundAnswersCarrierChallenge: a call to a number goes to the
// carrier; its 407 is answered once with the trunk's credentials and the
// call goes on as any other.
func TestOutboundAnswersCarrierChallenge(t *testing.T) {
	b, carrier := outboundBench(t)
	req := parse(t, []string{
		"INVITE sip:+31201234567@veilig.test SIP/2.0",
		"Via: SIP/2.0/TLS 127.0.0.10:40000;branch=z9hG4bKout1",
		"From: <sip:1001@veilig.test>;tag=callertag", "To: <sip:+31201234567@veilig.test>",
		"Call-ID: call-a@test", "CSeq: 1 INVITE", "Contact: <sip:1001@127.0.0.10:40000;transport=tls>",
	}, offerSDP("127.0.0.10", keyA))
	tx := &fakeServerTx{req: req, tag: "veiligA"}
	if err := b.m.serve(t.Context(), &request{Request: req, Conn: b.caller, Tx: tx, Account: "1001", ua: "veilig-test"}); err != nil {
		t.Fatal(err)
	}
	invs := b.e.sentTo(carrier, sip.INVITE)
	if len(invs) != 1 || !strings.Contains(invs[0].req.Recipient.String(), "+31201234567@127.0.0.80") {
		t.Fatalf("INVITEs to the carrier: %d", len(invs))
	}
	res := sip.NewResponseFromRequest(invs[0].req, 407, "Proxy Authentication Required", nil)
	res.AppendHeader(sip.NewHeader("Proxy-Authenticate", `Digest realm="carrier", nonce="n1", algorithm=SHA-256, qop="auth"`))
	invs[0].onResp(res)
	invs = b.e.sentTo(carrier, sip.INVITE)
	if len(invs) != 2 {
		t.Fatalf("challenge not answered: %d INVITEs", len(invs))
	}
	authz := invs[1].req.GetHeader("Proxy-Authorization")
	if authz == nil || !strings.Contains(authz.Value(), `username="carrier-user"`) || invs[1].req.CSeq().SeqNo <= invs[0].req.CSeq().SeqNo {
		t.Fatalf("second INVITE: authorization %v, CSeq %d", authz, invs[1].req.CSeq().SeqNo)
	}
	if tx.final() != nil {
		t.Fatal("the caller heard of the challenge")
	}
	// A second challenge is not answered again: the call fails.
	res = sip.NewResponseFromRequest(invs[1].req, 407, "Proxy Authentication Required", nil)
	res.AppendHeader(sip.NewHeader("Proxy-Authenticate", `Digest realm="carrier", nonce="n2", algorithm=SHA-256, qop="auth"`))
	invs[1].onResp(res)
	if len(b.e.sentTo(carrier, sip.INVITE)) != 2 {
		t.Fatal("a refused credential was sent again")
	}
	if fin := tx.final(); fin == nil || fin.StatusCode != 480 {
		t.Fatalf("caller's final = %v, want 480", fin)
	}
	if rec := b.ended(); rec.Trunk != "carrier" || rec.E164 != "+31201234567" {
		t.Fatalf("record %+v", rec)
	}
	b.idle()
}

// TestOutboundRefusedByFraudGuard: a number the extension's class may not
// call never reaches the carrier.
func TestOutboundRefusedByFraudGuard(t *testing.T) {
	b, carrier := outboundBench(t)
	req := parse(t, []string{
		"INVITE sip:+12025550100@veilig.test SIP/2.0",
		"Via: SIP/2.0/TLS 127.0.0.10:40000;branch=z9hG4bKout2",
		"From: <sip:1001@veilig.test>;tag=callertag", "To: <sip:+12025550100@veilig.test>",
		"Call-ID: call-b@test", "CSeq: 1 INVITE",
	}, offerSDP("127.0.0.10", keyA))
	tx := &fakeServerTx{req: req, tag: "veiligA"}
	if err := b.m.serve(t.Context(), &request{Request: req, Conn: b.caller, Tx: tx, Account: "1001", ua: "veilig-test"}); err != nil {
		t.Fatal(err)
	}
	if fin := tx.final(); fin == nil || fin.StatusCode != 403 {
		t.Fatalf("international call from a national extension answered %v, want 403", fin)
	}
	if len(b.e.sentTo(carrier, sip.INVITE)) != 0 {
		t.Fatal("a refused call reached the carrier")
	}
	if rec := b.ended(); rec.Disposition != "refused" || !strings.HasPrefix(rec.Fraud, "refused") {
		t.Fatalf("record %+v", rec)
	}
}
