package test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestUnknownUserSameResponseAsWrongPassword: REGISTER for an extension
// that does not exist must be answered exactly like one for an existing
// extension with a wrong password, both the challenge and the answer to the
// (wrong) credentials, byte for byte once the values that must differ are
// normalised: nonce/opaque, the To tag the server adds, and what the client
// chose itself (user, Call-ID, tags, branches, its address) that is echoed.
func TestUnknownUserSameResponseAsWrongPassword(t *testing.T) {
	srv := startServer(t, serverOptions{})
	srv.addExtension(t, "1001")

	for _, alg := range []string{"SHA-256", "MD5"} {
		wrong := registerForComparison(t, srv, "127.0.0.21", "1001", alg)
		unknown := registerForComparison(t, srv, "127.0.0.22", "1999", alg)
		if wrong.finalStatus != 401 {
			t.Errorf("%s: wrong password got %d, want 401", alg, wrong.finalStatus)
		}
		compareNormalised(t, alg+" challenge", wrong.challenge, unknown.challenge)
		compareNormalised(t, alg+" answer to wrong credentials", wrong.final, unknown.final)
		t.Logf("%s: answer to wrong credentials, normalised:\n%s", alg, wrong.final)
	}
	srv.waitEvent(t, 5*time.Second, "auth.failure", forAccount("1001"))
}

// exchange is the normalised text of the two responses to one attempt.
type exchange struct {
	challenge, final string
	finalStatus      int
}

// registerForComparison sends REGISTER and then wrong credentials for user
// from a fresh connection and returns both responses, normalised.
func registerForComparison(t *testing.T, srv *server, localIP, user, alg string) exchange {
	t.Helper()
	c := dialSIPTLS(t, localIP, srv.tlsAddr)
	chal, final := c.register(t, srv.domain, user, "Not-The-Secret-42!", alg)
	if chal.status() != 401 {
		t.Fatalf("REGISTER %s (no credentials) got %q, want 401", user, chal.start)
	}
	local := c.localAddr().String()
	return exchange{
		challenge:   normalise(chal.raw, user, local),
		final:       normalise(final.raw, user, local),
		finalStatus: final.status(),
	}
}

var normalisers = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`nonce="[^"]*"`), `nonce="NONCE"`},
	{regexp.MustCompile(`opaque="[^"]*"`), `opaque="OPAQUE"`},
	{regexp.MustCompile(`(?mi)^(To|t):(.*);tag=[^;\s,>]+`), `$1:$2;tag=TOTAG`},
	{regexp.MustCompile(`(?mi)^(From|f):(.*);tag=[^;\s,>]+`), `$1:$2;tag=FROMTAG`},
	{regexp.MustCompile(`branch=[^;\s,]+`), `branch=BRANCH`},
	{regexp.MustCompile(`rport=\d+`), `rport=PORT`},
	{regexp.MustCompile(`received=[^;\s,]+`), `received=IP`},
	{regexp.MustCompile(`(?mi)^(Call-ID|i):.*$`), `$1: CALLID`},
	{regexp.MustCompile(`(?mi)^Date:.*$`), `Date: DATE`},
}

// normalise replaces what legitimately differs between two otherwise
// identical exchanges.
func normalise(raw, user, local string) string {
	raw = strings.ReplaceAll(raw, local, "LOCAL")
	raw = strings.ReplaceAll(raw, "sip:"+user+"@", "sip:USER@")
	for _, n := range normalisers {
		raw = n.re.ReplaceAllString(raw, n.repl)
	}
	return raw
}

func compareNormalised(t *testing.T, what, existing, unknown string) {
	t.Helper()
	if existing != unknown {
		t.Errorf("%s differs between wrong password (existing user) and unknown user:\n--- existing, wrong password:\n%s\n--- unknown user:\n%s\n--- first difference: %s",
			what, existing, unknown, firstDiff(existing, unknown))
	}
}

func firstDiff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < max(len(la), len(lb)); i++ {
		var x, y string
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		if x != y {
			return fmt.Sprintf("line %d: %q vs %q", i+1, strings.TrimSpace(x), strings.TrimSpace(y))
		}
	}
	return "none"
}
