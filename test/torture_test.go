package test

// RFC 4475 torture messages against a running Veilig, over UDP and TLS.

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// tortureWant is what Veilig may answer to one RFC 4475 message (the
// expectations of internal/sipedge/sanity's TestTorture, seen from the
// wire): codes lists the acceptable statuses; silent allows no answer;
// routed marks messages that are valid and reach the auth stage, so a
// challenge (401/407) is the right answer.
type tortureWant struct {
	codes  []int
	silent bool
	routed bool
	why    string
}

// refused: the documented refusal, or 400 (the edge's basic checks run
// before the strict ones and may catch the message first), or silence.
func refused(codes ...int) tortureWant { return tortureWant{codes: append(codes, 400), silent: true} }

// torture: sanity's table; "parse" entries (sipgo cannot read them) may get
// a 400 or nothing. Invalid messages are never routed: no 2xx, no 401/407.
var tortureExpect = map[string]tortureWant{
	"invalid/badaspec":   refused(400),
	"invalid/badbranch":  refused(400),
	"invalid/baddate":    refused(400),
	"invalid/baddn":      refused(400),
	"invalid/badinv01":   refused(400),
	"invalid/badvers":    refused(505, 400),
	"invalid/bcast":      {silent: true, why: "a response: never answered"},
	"invalid/bext01":     refused(420),
	"invalid/bigcode":    {silent: true, why: "a response (code 4294967301): never answered"},
	"invalid/clerr":      refused(400),
	"invalid/cparam01":   {routed: true, why: "RFC 4475 3.3.12: a valid REGISTER (sipgo files it under invalid/)"},
	"invalid/cparam02":   {routed: true, why: "RFC 4475 3.3.13: a valid REGISTER (sipgo files it under invalid/)"},
	"invalid/escruri":    refused(400),
	"invalid/insuf":      refused(400),
	"invalid/inv2543":    refused(400),
	"invalid/invut":      refused(415),
	"invalid/ltgtruri":   refused(400),
	"invalid/lwsruri":    refused(400),
	"invalid/lwsstart":   refused(400),
	"invalid/mcl01":      refused(400),
	"invalid/mismatch01": refused(400),
	"invalid/mismatch02": refused(400),
	"invalid/multi01":    refused(400),
	"invalid/ncl":        refused(400),
	"invalid/novelsc":    refused(400),
	"invalid/quotbal":    refused(400),
	"invalid/regaut01":   refused(400),
	"invalid/regbadct":   refused(400),
	"invalid/regescrt":   refused(400),
	"invalid/scalar02":   refused(400),
	"invalid/scalarlg":   refused(400),
	"invalid/sdp01":      refused(406),
	"invalid/test":       refused(400),
	"invalid/trws":       refused(400),
	"invalid/unkscm":     refused(416),
	"invalid/unksm2":     refused(400),
	"invalid/zeromf":     refused(483),

	"valid/dblreq":     {routed: true},
	"valid/esc01":      {routed: true},
	"valid/esc02":      {codes: []int{405}, why: "RE%47IST%45R is an unknown method, not REGISTER"},
	"valid/escnull":    {routed: true},
	"valid/intmeth":    {codes: []int{405, 400}, why: "unknown method; sipgo upper-cases it, so the edge sees a CSeq method mismatch (400)"},
	"valid/longreq":    {codes: []int{400}, silent: true, why: "RFC 2543 branches in its Vias"},
	"valid/lwsdisp":    {routed: true},
	"valid/mpart01":    {routed: true},
	"valid/noreason":   {silent: true, why: "a response (no reason phrase) to no transaction: absorbed"},
	"valid/semiuri":    {routed: true},
	"valid/transports": {routed: true},
	"valid/unreason":   {silent: true, why: "a response (UTF-8 reason) to no transaction: absorbed"},
	"valid/wsinv":      {codes: []int{400}, silent: true, why: "RFC 2543 top branch, ambiguous tag"},
}

// TestTortureOverUDPAndTLS sends every RFC 4475 message of the sanity
// package's corpus to a running Veilig over UDP and over TLS (a fresh
// socket or connection each, from two addresses) and checks each answer
// against tortureExpect. Afterwards the server must still authenticate a
// REGISTER and must not have counted a panic.
func TestTortureOverUDPAndTLS(t *testing.T) {
	srv, maddr := startGuardServer(t, serverOptions{UDP: true}, "")
	secret := srv.addExtension(t, "1001")
	files, err := filepath.Glob("../internal/sipedge/sanity/testdata/torture/*/*.dat")
	if err != nil || len(files) == 0 {
		t.Fatalf("no torture corpus: %v", err)
	}
	sort.Strings(files)
	type sent struct {
		name      string
		want      tortureWant
		udp, tls  string
		tlsErr    error
		transport string
	}
	var all []sent
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.ToSlash(f), "../internal/sipedge/sanity/testdata/torture/"), ".dat")
		w, ok := tortureExpect[name]
		if !ok {
			t.Errorf("no expectation for %s (new corpus file?)", name)
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, sent{name: name, want: w, udp: string(raw)})
	}
	// The corpus reuses branches (z9hG4bKkdjuw alone is in seven files),
	// and a request that matches a live transaction (branch, sent-by,
	// method: RFC 3261 17.2.3) is a retransmission whose answer goes where
	// the first one went. Each send gets its own RFC 3261 branches; the
	// RFC 2543 and cookie-less branches under test stay as they are.
	uniq := 0
	uniqueBranches := func(raw string) string {
		return reBranch.ReplaceAllStringFunc(raw, func(m string) string {
			uniq++
			return fmt.Sprintf("%s%d.%s", m[:len(m)-1], uniq, m[len(m)-1:])
		})
	}
	// TLS: a fresh connection per message.
	for i := range all {
		// Over TLS the top Via must say TLS (RFC 3261 18.2.1); the corpus
		// says UDP or TCP.
		all[i].tls, all[i].tlsErr = tlsAsk("127.0.0.41", srv.tlsAddr, uniqueBranches(viaOverTLS(all[i].udp)), 700*time.Millisecond)
	}
	// UDP: one socket, as one peer would send them. INVITE challenges are
	// retransmitted until ACKed, so an answer counts only with the
	// message's own Call-ID.
	us := dialSIPUDP(t, "127.0.0.40", srv.udpAddr)
	buf := make([]byte, 65535)
	for i := range all {
		msg := uniqueBranches(all[i].udp)
		callID := callIDOf(msg)
		if _, err := us.conn.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		all[i].udp = ""
		deadline := time.Now().Add(700 * time.Millisecond)
		for time.Now().Before(deadline) {
			_ = us.conn.SetReadDeadline(deadline)
			n, err := us.conn.Read(buf)
			if err != nil {
				break
			}
			if res := string(buf[:n]); callID == "" || callIDOf(res) == callID {
				all[i].udp = res
				break
			}
		}
	}
	var table []string
	for _, s := range all {
		if s.tlsErr != nil {
			t.Errorf("%s over TLS: %v", s.name, s.tlsErr)
		}
		for _, r := range []struct{ transport, res string }{{"udp", s.udp}, {"tls", s.tls}} {
			code := statusOf(r.res)
			if r.res != "" && !strings.HasPrefix(r.res, "SIP/2.0 ") {
				t.Errorf("%s over %s: the answer's status line is not SIP/2.0 (RFC 3261 7.2; a SIP/7.0 request deserves 505 or nothing): %q",
					s.name, r.transport, firstLine(r.res))
			}
			table = append(table, fmt.Sprintf("%-20s %-3s %3d %s", s.name, r.transport, code, firstLine(r.res)))
			if msg := judgeTorture(s.name, s.want, code); msg != "" {
				t.Errorf("%s over %s: %s; answer:\n%s", s.name, r.transport, msg, r.res)
			}
		}
	}
	t.Logf("answers (0 = silence):\n%s", strings.Join(table, "\n"))

	// Still alive: an authenticated REGISTER over TLS succeeds.
	mustRegisterRaw(t, srv, "127.0.0.42", "1001", secret)
	m := metricsText(t, maddr)
	if p := metricSum(m, "veilig_sip_panics_total"); p != 0 {
		t.Errorf("veilig_sip_panics_total = %v, want 0; server log:\n%s", p, tail(srv.proc.Output(), 40))
	}
	if !strings.Contains(m, "veilig_sip_panics_total") {
		t.Errorf("metrics have no veilig_sip_panics_total")
	}
	if srv.proc.Exited() || strings.Contains(srv.proc.Output(), "panic") {
		t.Errorf("server exited or logged a panic:\n%s", tail(srv.proc.Output(), 40))
	}
	t.Logf("edge counters: malformed %v, dropped %v, rejected %v, panics %v",
		metricSum(m, "veilig_sip_malformed_total"), metricSum(m, "veilig_sip_dropped_total"),
		metricSum(m, "veilig_sip_rejected_total"), metricSum(m, "veilig_sip_panics_total"))
}

var reBranch = regexp.MustCompile(`branch=z9hG4bK[^;\s,]`)

var reTopVia = regexp.MustCompile(`(?m)^(Via|v)(\s*:\s*SIP\s*/\s*2\.0\s*/\s*)(UDP|TCP)`)

// viaOverTLS makes the first Via's transport TLS.
func viaOverTLS(raw string) string {
	done := false
	return reTopVia.ReplaceAllStringFunc(raw, func(m string) string {
		if done {
			return m
		}
		done = true
		return m[:len(m)-3] + "TLS"
	})
}

var reCallID = regexp.MustCompile(`(?mi)^(?:call-id|i)[ \t]*:[ \t]*(\S+)`)

// callIDOf returns the Call-ID of a raw message ("" when none).
func callIDOf(raw string) string {
	if m := reCallID.FindStringSubmatch(raw); m != nil {
		return m[1]
	}
	return ""
}

// judgeTorture returns "" when code (0 = silence) is acceptable for w.
func judgeTorture(name string, w tortureWant, code int) string {
	invalid := strings.HasPrefix(name, "invalid/") && !w.routed
	switch {
	case invalid && code >= 200 && code < 300:
		return fmt.Sprintf("invalid message answered %d (routed)", code)
	case invalid && (code == 401 || code == 407):
		return fmt.Sprintf("invalid message reached the auth stage (%d)", code)
	case code == 0 && w.silent:
		return ""
	case code == 0 && w.routed:
		return "valid message got no answer"
	case w.routed:
		if code == 400 || code >= 500 {
			return fmt.Sprintf("valid message refused with %d", code)
		}
		return ""
	}
	for _, c := range w.codes {
		if code == c {
			return ""
		}
	}
	if code == 0 {
		return fmt.Sprintf("no answer, want one of %v", w.codes)
	}
	return fmt.Sprintf("answered %d, want one of %v or silence=%v", code, w.codes, w.silent)
}
