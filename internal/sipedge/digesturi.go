package sipedge

import (
	"net/netip"
	"net/url"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// digestURIMatches reports whether the uri parameter of digest credentials
// names the resource of the Request-URI, as RFC 3261 section 22.4 requires
// a server to check: without it, credentials computed for one request are
// accepted on another (a captured INVITE's digest redirected to a different
// callee). SIP URIs are compared by the rules of section 19.1.4: scheme,
// user and password exactly (after unescaping), host case-insensitively,
// port, the transport, user, ttl, method and maddr parameters whenever
// either URI has them, any other parameter both have, and the headers.
//
// One relaxation: two hosts that both name this server (local) are the
// same host, whatever their ports. Veilig routes on the user part and never
// forwards to a Request-URI host, so a uri that says "this server" by
// another of its names or ports selects the same resource; clients do this
// (sipp puts the address and port it sent to, not the Request-URI, into
// uri), and a uri naming any other host is still refused.
func digestURIMatches(digest string, ruri *sip.Uri, local func(host string) bool) bool {
	var d sip.Uri
	if ruri == nil || sip.ParseUri(digest, &d) != nil {
		return false
	}
	if d.Scheme != ruri.Scheme {
		return false
	}
	if d.Scheme != "sip" && d.Scheme != "sips" {
		return strings.EqualFold(d.Raw(), ruri.Raw())
	}
	if d.Wildcard || ruri.Wildcard {
		return false
	}
	if unescape(d.User) != unescape(ruri.User) || unescape(d.Password) != unescape(ruri.Password) {
		return false
	}
	if !sameHost(d.Host, ruri.Host) || d.Port != ruri.Port {
		if local == nil || !local(d.Host) || !local(ruri.Host) {
			return false
		}
	}
	return sameParams(d.UriParams, ruri.UriParams) && sameHeaders(d.Headers, ruri.Headers)
}

// userlessLocalURI reports a digest uri that names this server with no
// user, for a Request-URI to this server: what sipp 3.6.1 sends, accepted
// only when auth.insecure_digest_uri_without_user says so.
func userlessLocalURI(digest string, ruri *sip.Uri, local func(host string) bool) bool {
	var d sip.Uri
	if ruri == nil || sip.ParseUri(digest, &d) != nil || (d.Scheme != "sip" && d.Scheme != "sips") {
		return false
	}
	return d.User == "" && d.Password == "" && local != nil && local(d.Host) && local(ruri.Host)
}

func unescape(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}

// sameHost compares host names case-insensitively and IP addresses by
// value (so [::1] and [0:0::1] are one host).
func sameHost(a, b string) bool {
	a, b = trimBrackets(a), trimBrackets(b)
	if ia, err := netip.ParseAddr(a); err == nil {
		ib, err := netip.ParseAddr(b)
		return err == nil && ia.Unmap() == ib.Unmap()
	}
	return strings.EqualFold(a, b)
}

// mustMatch are the URI parameters that, present in either URI, must be
// present with the same value in both (RFC 3261 19.1.4).
var mustMatch = []string{"transport", "user", "ttl", "method", "maddr"}

func sameParams(a, b sip.HeaderParams) bool {
	get := func(hp sip.HeaderParams, k string) (string, bool) {
		for _, kv := range hp {
			if strings.EqualFold(kv.K, k) {
				return kv.V, true
			}
		}
		return "", false
	}
	for _, k := range mustMatch {
		va, oka := get(a, k)
		vb, okb := get(b, k)
		if oka != okb || !strings.EqualFold(va, vb) {
			return false
		}
	}
	for _, kv := range a {
		if vb, ok := get(b, kv.K); ok && !strings.EqualFold(kv.V, vb) {
			return false
		}
	}
	return true
}

// sameHeaders requires the same URI headers in both, names compared
// case-insensitively and values exactly.
func sameHeaders(a, b sip.HeaderParams) bool {
	if len(a) != len(b) {
		return false
	}
	for _, kv := range a {
		found := false
		for _, kb := range b {
			if strings.EqualFold(kv.K, kb.K) && unescape(kv.V) == unescape(kb.V) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// localHosts answers whether a host names this server: one of the
// configured names (domain, advertised host, listen addresses) or the
// address the request arrived on.
type localHosts struct {
	names map[string]bool
	addrs map[netip.Addr]bool
}

func newLocalHosts(hosts []string) *localHosts {
	l := &localHosts{names: map[string]bool{}, addrs: map[netip.Addr]bool{}}
	for _, h := range hosts {
		h = trimBrackets(strings.TrimSpace(h))
		if h == "" {
			continue
		}
		if a, err := netip.ParseAddr(h); err == nil {
			if !a.IsUnspecified() {
				l.addrs[a.Unmap()] = true
			}
			continue
		}
		l.names[strings.ToLower(h)] = true
	}
	return l
}

func (l *localHosts) is(host string, arrived netip.Addr) bool {
	host = trimBrackets(host)
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap()
		return l.addrs[a] || (arrived.IsValid() && !arrived.IsUnspecified() && a == arrived.Unmap())
	}
	return l.names[strings.ToLower(host)]
}
