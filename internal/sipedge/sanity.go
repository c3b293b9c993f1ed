package sipedge

import (
	"strings"

	"github.com/emiago/sipgo/sip"
)

// basicSanity checks what the transaction layer itself relies on: one of
// each mandatory header, an RFC 3261 branch, a CSeq that names the method,
// SIP/2.0 and a Content-Length that agrees with the body. It returns the
// reason phrase for a 400, or "" when the request may proceed. (The guard
// chain's sanity stage adds the finer RFC 4475 checks.)
func basicSanity(r *sip.Request) string {
	if r.SipVersion != "SIP/2.0" {
		return "Unsupported SIP Version"
	}
	for _, name := range []string{"From", "To", "Call-ID", "CSeq"} {
		switch n := len(r.GetHeaders(name)); {
		case n == 0:
			return "Missing " + name
		case n > 1:
			return "Duplicate " + name
		}
	}
	if len(r.GetHeaders("Content-Length")) > 1 {
		return "Duplicate Content-Length"
	}
	v := r.Via()
	if v == nil {
		return "Missing Via"
	}
	if !strings.HasPrefix(v.Params.GetOr("branch", ""), sip.RFC3261BranchMagicCookie) {
		return "Missing RFC 3261 branch"
	}
	if v.Host == "" {
		return "Bad Via"
	}
	cs := r.CSeq()
	if cs.MethodName != r.Method && !(r.Method == sip.ACK && cs.MethodName == sip.ACK) {
		return "CSeq Method Mismatch"
	}
	if r.CallID() == nil || len(*r.CallID()) == 0 {
		return "Bad Call-ID"
	}
	if r.Recipient.Host == "" && !r.Recipient.Wildcard {
		return "Bad Request-URI"
	}
	if r.From().Address.Host == "" || r.To().Address.Host == "" {
		return "Bad From or To"
	}
	if cl := r.ContentLength(); cl != nil && int(*cl) != len(r.Body()) {
		return "Content-Length Mismatch"
	}
	if mf := r.MaxForwards(); mf != nil && int(*mf) > 255 {
		return "Bad Max-Forwards"
	}
	return ""
}
