package sipedge

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/veilig/veilig/internal/auth"
	"github.com/veilig/veilig/internal/events"
	"github.com/veilig/veilig/internal/throttle"
)

// Accounts answers the auth stage's one question. Implementations must
// answer from memory: a store round trip here would let timing reveal
// which extensions exist.
type Accounts interface {
	// HA1 returns the extension's digest HA1 for alg, ok=false when the
	// extension does not exist.
	HA1(user string, alg auth.Algorithm) (ha1 string, ok bool)
}

// AuthOptions configure the digest stage.
type AuthOptions struct {
	Realm    string
	AllowMD5 bool
	// MD5First offers MD5 before SHA-256 (auth.insecure_md5_first), for
	// peers that read only the first challenge.
	MD5First bool
	// MD5Only lists lower-case User-Agent substrings of clients offered
	// MD5 alone (they abort on any other challenge); requests without a
	// User-Agent get MD5 first. Both only while AllowMD5 is set.
	MD5Only []string
	Nonces  *auth.NonceManager
	// Key derives fake HA1 values for unknown users and challenge tags.
	Key      []byte
	Accounts Accounts
	Events   events.Emitter
	// Observe, when set, hears every outcome (the lockout and ban policy
	// of the edge-defence issue plugs in here).
	Observe func(peer netip.AddrPort, user string, ok bool, reason string)
	// Gate, when set, is asked once the claimed account is known and
	// before the credentials are checked: a locked account (for this
	// source) or a source outside the account's allowlist is refused as
	// a failure, with the same answer as a wrong password.
	Gate func(peer netip.AddrPort, user string) (ok bool, reason string)
	// Trusted, when set, names the peer of a request that is
	// authenticated by its connection instead of digest (a carrier trunk
	// by source address or on the connection Veilig opened to it).
	// REGISTER is never trusted this way.
	Trusted func(c Conn) (account string, ok bool)
	// LocalHosts are the names and addresses this server answers to (the
	// domain, the advertised host, listen addresses): a digest uri naming
	// one of them matches a Request-URI naming another (see
	// digestURIMatches). The address a request arrived on always counts.
	LocalHosts []string
	// InsecureURIWithoutUser (auth.insecure_digest_uri_without_user)
	// accepts a digest uri that names this server but no user for a
	// Request-URI with one (sipp 3.6.1).
	InsecureURIWithoutUser bool
	Now                    func() time.Time
}

// AuthGate challenges every request outside a dialog, whatever its method,
// and lets it through only with valid digest credentials for an existing
// extension whose name matches the identity the request claims. Unknown
// users and wrong passwords take the same path and get the same answer.
func AuthGate(o AuthOptions) Middleware {
	if o.Now == nil {
		o.Now = time.Now
	}
	for i, s := range o.MD5Only {
		o.MD5Only[i] = strings.ToLower(s)
	}
	opaque := hex.EncodeToString(hmacSum(o.Key, "opaque")[:8])
	g := &authGate{o: o, opaque: opaque, local: newLocalHosts(o.LocalHosts), successes: throttle.New[string](time.Hour, 0, 1<<18)}
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, r *Request) error {
			if inDialog(r.Request) {
				return next.ServeSIP(ctx, r)
			}
			if o.Trusted != nil && r.Method != sip.REGISTER {
				if acct, ok := o.Trusted(r.Conn); ok {
					r.Account = acct
					return next.ServeSIP(ctx, r)
				}
			}
			user, ok := g.check(r)
			if !ok {
				return nil
			}
			r.Account = user
			return next.ServeSIP(ctx, r)
		})
	}
}

type authGate struct {
	o      AuthOptions
	opaque string
	local  *localHosts
	// successes throttles auth.success events: refreshes are not news,
	// a new source is.
	successes *throttle.Throttle[string]
}

// inDialog reports a request inside an existing dialog; the dialog layer
// checks those against its own state. REGISTER never is: a To tag must
// not let it past the challenge.
func inDialog(r *sip.Request) bool {
	if r.Method == sip.REGISTER {
		return false
	}
	to := r.To()
	return to != nil && to.Params.Has("tag")
}

func (g *authGate) check(r *Request) (string, bool) {
	hdrName, chCode := "Proxy-Authorization", 407
	if r.Method == sip.REGISTER {
		hdrName, chCode = "Authorization", 401
	}
	peer := r.Peer()
	now := g.o.Now()
	var creds auth.Credentials
	found := false
	for _, h := range r.GetHeaders(hdrName) {
		c, err := auth.ParseCredentials(h.Value())
		if err != nil {
			g.fail(r, chCode, "", "malformed credentials")
			return "", false
		}
		if c.Realm == g.o.Realm {
			creds, found = c, true
			break
		}
	}
	if !found {
		g.challenge(r, chCode, false)
		return "", false
	}
	if creds.Algorithm == auth.MD5 && !g.o.AllowMD5 {
		g.fail(r, chCode, creds.Username, "md5 not allowed")
		return "", false
	}
	if creds.QOP != "auth" {
		g.fail(r, chCode, creds.Username, "qop=auth required")
		return "", false
	}
	nc, err := auth.ParseNC(creds.NC)
	if err != nil {
		g.fail(r, chCode, creds.Username, "bad nonce count")
		return "", false
	}
	if g.o.Gate != nil {
		if ok, why := g.o.Gate(peer, creds.Username); !ok {
			// The gate has counted this failure itself.
			g.emit(peer, creds.Username, false, why)
			g.challenge(r, chCode, false)
			return "", false
		}
	}
	ha1, known := g.o.Accounts.HA1(creds.Username, creds.Algorithm)
	if !known {
		ha1 = auth.FakeHA1(creds.Algorithm, creds.Username, g.o.Realm, g.o.Key)
	}
	// The digest must have been computed for this request's target: a
	// mismatch takes the wrong password's path, answer and accounting.
	arrived := r.Conn.Local().Addr()
	isLocal := func(h string) bool { return g.local.is(h, arrived) }
	uriOK := digestURIMatches(creds.URI, &r.Recipient, isLocal) ||
		(g.o.InsecureURIWithoutUser && userlessLocalURI(creds.URI, &r.Recipient, isLocal))
	verified := auth.Verify(creds, string(r.Method), ha1) && known
	valid := verified && uriOK
	switch g.o.Nonces.Check(creds.Nonce, nc, now, peer.Addr().String()) {
	case auth.NonceOK:
	case auth.NonceStale:
		if valid {
			// The right secret under an old nonce: a routine refresh.
			g.challenge(r, chCode, true)
			return "", false
		}
		g.fail(r, chCode, creds.Username, "stale nonce")
		return "", false
	case auth.NonceReplay:
		g.fail(r, chCode, creds.Username, "replayed nonce")
		return "", false
	default:
		g.fail(r, chCode, creds.Username, "invalid nonce")
		return "", false
	}
	if !valid {
		reason := "wrong credentials"
		if verified {
			reason = "digest uri does not match the Request-URI"
		}
		g.fail(r, chCode, creds.Username, reason)
		return "", false
	}
	// The authenticated account must be the identity the request claims.
	claimed := r.From().Address.User
	if r.Method == sip.REGISTER {
		claimed = r.To().Address.User
	}
	if claimed != creds.Username {
		g.report(peer, creds.Username, false, "identity mismatch: claims "+claimed)
		_ = r.Respond(403, "Forbidden")
		return "", false
	}
	g.report(peer, creds.Username, true, "")
	return creds.Username, true
}

func (g *authGate) fail(r *Request, code int, user, reason string) {
	g.report(r.Peer(), user, false, reason)
	g.challenge(r, code, false)
}

func (g *authGate) report(peer netip.AddrPort, user string, ok bool, reason string) {
	if g.o.Observe != nil {
		g.o.Observe(peer, user, ok, reason)
	}
	g.emit(peer, user, ok, reason)
}

func (g *authGate) emit(peer netip.AddrPort, user string, ok bool, reason string) {
	if g.o.Events == nil {
		return
	}
	if !ok {
		g.o.Events.Emit(events.New(events.AuthFailure, peer, user, "authentication failed: "+reason, "reason", reason))
		return
	}
	if ok, _ := g.successes.Admit("", user+"|"+peer.Addr().String(), g.o.Now()); !ok {
		return
	}
	g.o.Events.Emit(events.New(events.AuthSuccess, peer, user, "authenticated"))
}

// challenge answers with fresh digest challenges. The response holds
// nothing that depends on whether the user exists; even its To tag is
// derived from the request, so two requests that differ only in the user
// get answers that differ only in the nonce.
func (g *authGate) challenge(r *Request, code int, stale bool) {
	reason, hdr := "Proxy Authentication Required", "Proxy-Authenticate"
	if code == 401 {
		reason, hdr = "Unauthorized", "WWW-Authenticate"
	}
	res := sip.NewResponseFromRequest(r.Request, code, reason, nil)
	tag := g.challengeTag(r.Request)
	if r.Tx != nil {
		r.Tx.SetToTag(tag)
	} else if to := res.To(); to != nil {
		to.Params.Remove("tag")
		to.Params.Add("tag", tag)
	}
	now := g.o.Now()
	nonce := g.o.Nonces.Issue(now, r.Peer().Addr().String())
	for _, a := range g.offer(r) {
		if a == auth.MD5 && !g.o.AllowMD5 {
			continue
		}
		res.AppendHeader(sip.NewHeader(hdr, auth.Challenge(g.o.Realm, nonce, g.opaque, a, stale)))
	}
	res.AppendHeader(sip.NewHeader("Server", r.edge.opts.UserAgent))
	_ = r.Send(res)
}

var (
	sha256First = []auth.Algorithm{auth.SHA256, auth.MD5}
	md5First    = []auth.Algorithm{auth.MD5, auth.SHA256}
	md5Only     = []auth.Algorithm{auth.MD5}
)

// offer picks the challenges for this client, strongest first (RFC 8760),
// except for clients known to fail on anything but MD5: they get MD5,
// which they would have chosen anyway, so nothing is weakened for them.
func (g *authGate) offer(r *Request) []auth.Algorithm {
	if !g.o.AllowMD5 {
		return sha256First[:1]
	}
	ua := r.GetHeader("User-Agent")
	if ua == nil {
		return md5First
	}
	if len(g.o.MD5Only) > 0 {
		v := strings.ToLower(ua.Value())
		for _, s := range g.o.MD5Only {
			if strings.Contains(v, s) {
				return md5Only
			}
		}
	}
	if g.o.MD5First {
		return md5First
	}
	return sha256First
}

func (g *authGate) challengeTag(r *sip.Request) string {
	cid := ""
	if h := r.CallID(); h != nil {
		cid = string(*h)
	}
	ft, _ := r.From().Params.Get("tag")
	return hex.EncodeToString(hmacSum(g.o.Key, "tag|"+cid+"|"+ft+"|"+strconv.FormatUint(uint64(r.CSeq().SeqNo), 10))[:8])
}

func hmacSum(key []byte, s string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return m.Sum(nil)
}
