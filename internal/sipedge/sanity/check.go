// Package sanity is the strict syntax stage of the edge guard chain. sipgo's
// parser is lenient: it accepts most of the RFC 4475 invalid messages and
// sometimes reads a header differently from the grammar. Check re-reads the
// raw bytes with the RFC 3261 grammar and also confirms that sipgo's parse
// agrees with it on everything routing and transactions rely on (Via branch
// and host, From/To tags, Call-ID, CSeq, method, Request-URI host,
// Max-Forwards, Content-Length), so a parser differential cannot smuggle a
// message past the checks. It keeps no state, does not allocate on a valid
// message (IPv6 literals aside) and runs before any routing.
package sanity

import (
	"bytes"
	"unicode/utf8"

	"github.com/emiago/sipgo/sip"
)

// Options bound what a message may be. A zero or negative number, or an
// empty AllowedMethods, means the DefaultOptions value.
type Options struct {
	// MaxMessageSize bounds the whole message in bytes (513 above it).
	MaxMessageSize int
	// MaxHeaderCount bounds header fields (a folded field counts once);
	// above it the message is dropped: only a flood looks like that.
	MaxHeaderCount int
	// MaxHeaderLen bounds one header field, name and folded lines included
	// (513 above it).
	MaxHeaderLen int
	// MaxBodySize bounds the body (413 above it).
	MaxBodySize int
	// MaxURILen bounds the Request-URI (414 above it).
	MaxURILen int
	// AllowedMethods lists the request methods served, compared exactly
	// (methods are case-sensitive); others get 405.
	AllowedMethods []string
	// SupportedExtensions lists the option tags a Require or Proxy-Require
	// may name; any other gets 420 Bad Extension. Empty by default: Veilig
	// implements no SIP extension that a peer can insist on.
	SupportedExtensions []string
}

// defaultMethods is the default AllowedMethods; fill reads it in place so a
// Check with empty AllowedMethods does not allocate.
var defaultMethods = []string{
	"INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "INFO", "UPDATE",
	"MESSAGE", "NOTIFY", "SUBSCRIBE", "REFER", "PRACK", "PUBLISH",
}

// Defaults. 65535 matches the largest UDP datagram and the config's upper
// bound for max_message_size; the rest fit every real client we know while
// refusing the oversized fields scanners and fuzzers send.
const (
	defaultMaxMessageSize = 65535
	defaultMaxHeaderCount = 100
	defaultMaxHeaderLen   = 4096
	defaultMaxBodySize    = 32768
	defaultMaxURILen      = 1024
)

// DefaultOptions returns the default limits and method set (a fresh slice
// the caller may change).
func DefaultOptions() Options {
	return Options{
		MaxMessageSize: defaultMaxMessageSize,
		MaxHeaderCount: defaultMaxHeaderCount,
		MaxHeaderLen:   defaultMaxHeaderLen,
		MaxBodySize:    defaultMaxBodySize,
		MaxURILen:      defaultMaxURILen,
		AllowedMethods: append([]string(nil), defaultMethods...),
	}
}

func (o *Options) fill() {
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = defaultMaxMessageSize
	}
	if o.MaxHeaderCount <= 0 {
		o.MaxHeaderCount = defaultMaxHeaderCount
	}
	if o.MaxHeaderLen <= 0 {
		o.MaxHeaderLen = defaultMaxHeaderLen
	}
	if o.MaxBodySize <= 0 {
		o.MaxBodySize = defaultMaxBodySize
	}
	if o.MaxURILen <= 0 {
		o.MaxURILen = defaultMaxURILen
	}
	if len(o.AllowedMethods) == 0 {
		o.AllowedMethods = defaultMethods
	}
}

// Result is the verdict on one message.
type Result struct {
	// OK means the message may go on to routing.
	OK bool
	// Code is the SIP status to answer with when !OK && !Drop: 400, 405,
	// 406, 413, 414, 415, 416, 420, 483, 505 or 513.
	Code int
	// Reason is a short constant phrase, safe to send as the reason phrase
	// and to log; it never echoes message bytes.
	Reason string
	// Drop means do not answer: the message is a response or an ACK, or it
	// lacks a well-formed Via, From, To, Call-ID or CSeq to build an answer
	// from, or its framing is broken (bare CR/LF, header section not
	// terminated, too many headers, more bytes than allowed).
	Drop bool
	// Unsupported, with Code 420, is the option tag the answer must list in
	// its Unsupported header.
	Unsupported string
}

// Check validates one message: raw is exactly what the transport delivered
// (the whole datagram for UDP, the framed message for stream transports)
// and msg is sipgo's parse of it. Check never panics and keeps no state.
func Check(raw []byte, msg sip.Message, opts Options) (res Result) {
	defer func() {
		// A bug here must not take down the listener: refuse the message.
		if recover() != nil {
			res = Result{Code: 400, Reason: "Bad Request", Drop: true}
		}
	}()
	return check(raw, msg, opts)
}

func check(raw []byte, msg sip.Message, opts Options) Result {
	opts.fill()
	c := checker{raw: raw, msg: msg, o: opts}
	f := c.run()
	if f.code == 0 {
		return Result{OK: true}
	}
	r := Result{Code: f.code, Reason: f.reason}
	r.Drop = f.fatal || !c.answerable || c.resp != nil || c.isACK
	if f.code == 420 {
		r.Unsupported = string(c.unsupported)
	}
	return r
}

type fault struct {
	code   int
	reason string
	fatal  bool
}

func (f *fault) note(code int, reason string) {
	if f.code == 0 {
		f.code, f.reason = code, reason
	}
}

func bad(reason string) fault { return fault{code: 400, reason: reason} }

type checker struct {
	raw  []byte
	msg  sip.Message
	req  *sip.Request
	resp *sip.Response
	o    Options

	method, ruri []byte
	ruriInfo     uriInfo
	isACK        bool
	status       int
	bodyStart    int

	nFrom, nTo, nCallID, nCSeq, nMaxFwd, nCL, nCT, nVia, nContact int
	nExpires, nDate                                               int
	contactStar                                                   bool

	from, to    addr
	callID      []byte
	cseqNum     uint64
	cseqMethod  []byte
	maxFwd      uint64
	cl          uint64
	ctType      []byte
	ctSub       []byte
	topHost     []byte
	topBranch   []byte
	unsupported []byte
	acceptSeen  bool
	acceptSDP   bool

	line       fault // request or status line, reported after the essentials
	version    fault // 505, reported first so a SIP/3.0 peer learns why
	ess        fault // Via, From, To, Call-ID, CSeq: decides answerability
	hdr        fault // any other header
	answerable bool
}

func (c *checker) run() fault {
	if c.msg == nil {
		return fault{400, "Bad Request", true}
	}
	if len(c.raw) > c.o.MaxMessageSize {
		return fault{513, "Message Too Large", true}
	}
	switch m := c.msg.(type) {
	case *sip.Request:
		c.req = m
	case *sip.Response:
		c.resp = m
	default:
		return fault{400, "Bad Request", true}
	}
	i := 0
	for i+1 < len(c.raw) && c.raw[i] == '\r' && c.raw[i+1] == '\n' {
		i += 2 // RFC 3261 7.5: CRLFs before a stream message are ignored
	}
	nl := bytes.IndexByte(c.raw[i:], '\n')
	if nl < 1 || c.raw[i+nl-1] != '\r' {
		return fault{400, "Malformed Start Line", true}
	}
	line := c.raw[i : i+nl-1]
	if isStatus := bytes.HasPrefix(line, []byte("SIP/")); isStatus != (c.resp != nil) {
		return fault{400, "Malformed Start Line", true}
	}
	if c.req != nil {
		c.requestLine(line)
	} else {
		c.statusLine(line)
	}
	if f := c.headers(i + nl + 1); f.code != 0 {
		f.fatal = true
		return f
	}
	c.essentials()
	switch {
	case c.version.code != 0:
		return c.version
	case c.ess.code != 0:
		return c.ess
	case c.line.code != 0:
		return c.line
	case c.hdr.code != 0:
		return c.hdr
	}
	if f := c.body(); f.code != 0 {
		return f
	}
	if c.req != nil {
		return c.request()
	}
	return fault{}
}

// requestLine checks Method SP Request-URI SP SIP-Version with exactly two
// single spaces (RFC 4475 lwsstart, lwsruri, trws, ltgtruri, escruri).
func (c *checker) requestLine(line []byte) {
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		c.line.note(400, "Malformed Request-Line")
		return
	}
	rest := line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 < 0 {
		c.line.note(400, "Malformed Request-Line")
		return
	}
	c.method, c.ruri = line[:sp1], rest[:sp2]
	version := rest[sp2+1:]
	c.isACK = string(c.method) == "ACK"
	if span(c.method, 0, cToken) != len(c.method) || bytes.IndexByte(version, ' ') >= 0 || len(c.ruri) == 0 {
		c.line.note(400, "Malformed Request-Line")
		return
	}
	if string(version) != "SIP/2.0" {
		if len(version) > 4 && foldEq(version[:4], "SIP/") {
			c.version.note(505, "Version Not Supported")
		} else {
			c.line.note(400, "Malformed Request-Line")
		}
		return
	}
	if len(c.ruri) > c.o.MaxURILen {
		c.line.note(414, "Request-URI Too Long")
		return
	}
	info, ok := checkURI(c.ruri)
	c.ruriInfo = info
	switch {
	case !ok:
		c.line.note(400, "Malformed Request-URI")
	case info.scheme == schemeOther:
		c.line.note(416, "Unsupported URI Scheme")
	case info.headers:
		// RFC 3261 19.1.1: headers are not allowed in a Request-URI.
		c.line.note(400, "Headers In Request-URI")
	}
}

// statusLine checks SIP/2.0 SP 3DIGIT SP Reason-Phrase; a response is never
// answered, so every fault here only decides the drop.
func (c *checker) statusLine(line []byte) {
	if len(line) < 12 || string(line[:8]) != "SIP/2.0 " || line[11] != ' ' {
		c.line.note(400, "Malformed Status-Line")
		return
	}
	n, ok := parseUint(line[8:11], 999)
	if !ok || n < 100 || n > 699 || int(n) != c.resp.StatusCode {
		c.line.note(400, "Malformed Status-Line")
		return
	}
	c.status = int(n)
	hi := false
	for _, b := range line[12:] {
		if b < 0x20 && b != '\t' || b == 0x7f {
			c.line.note(400, "Malformed Status-Line")
			return
		}
		hi = hi || b >= 0x80
	}
	if hi && !utf8.Valid(line[12:]) {
		c.line.note(400, "Malformed Status-Line")
	}
}

// headers scans the header section from i. It returns a fault only for
// broken framing, after which nothing in the message can be trusted; every
// other problem is noted and the scan goes on so that answerability is known.
func (c *checker) headers(i int) fault {
	raw := c.raw
	count := 0
	for {
		if i >= len(raw) {
			return bad("Header Section Not Terminated")
		}
		switch raw[i] {
		case '\r':
			if i+1 < len(raw) && raw[i+1] == '\n' {
				c.bodyStart = i + 2
				return fault{}
			}
			return bad("Bare CR")
		case ' ', '\t':
			return bad("Malformed Header")
		}
		start := i
		e := span(raw, i, cToken)
		if e == i {
			return bad("Malformed Header Name")
		}
		name := raw[i:e]
		for e < len(raw) && (raw[e] == ' ' || raw[e] == '\t') {
			e++
		}
		if e >= len(raw) || raw[e] != ':' {
			return bad("Malformed Header")
		}
		vs := e + 1
		k, inQuote, hi, ctl := vs, false, false, false
	value:
		for {
			for k < len(raw) && vtab[raw[k]] == vPlain {
				k++ // the common case: one table load per byte
			}
			if k >= len(raw) {
				return bad("Header Section Not Terminated")
			}
			switch b := raw[k]; {
			case b == '\r':
				if k+1 >= len(raw) || raw[k+1] != '\n' {
					return bad("Bare CR")
				}
				if k+2 < len(raw) && (raw[k+2] == ' ' || raw[k+2] == '\t') {
					k += 3 // folded continuation line
					continue
				}
				break value
			case b == '\n':
				return bad("Bare LF")
			case b == '"':
				inQuote = !inQuote
			case b == '\\' && inQuote:
				// quoted-pair may carry any ASCII but CR and LF (RFC 4475 intmeth).
				if k+1 < len(raw) && raw[k+1] < 0x80 && raw[k+1] != '\r' && raw[k+1] != '\n' {
					k += 2
					continue
				}
				ctl = true
			case b < 0x20 && b != '\t' || b == 0x7f:
				ctl = true
			case b >= 0x80:
				hi = true
			}
			k++
		}
		value := raw[vs:k]
		i = k + 2
		count++
		if count > c.o.MaxHeaderCount {
			return fault{code: 513, reason: "Too Many Headers"}
		}
		// These are noted, not skipped: the field still counts, so a long
		// From is reported as too long rather than as missing.
		switch {
		case k-start > c.o.MaxHeaderLen:
			c.hdr.note(513, "Header Too Long")
		case ctl:
			c.hdr.note(400, "Control Character In Header")
		case hi && !utf8.Valid(value):
			c.hdr.note(400, "Invalid UTF-8 In Header")
		}
		c.header(classify(name), value)
	}
}

// Byte classes for header values: vPlain bytes need no further look.
const (
	vPlain = iota
	vSpecial
)

var vtab = func() (t [256]uint8) {
	for i := range t {
		if i < 0x20 || i >= 0x7f || i == '"' || i == '\\' {
			t[i] = vSpecial
		}
	}
	t['\t'] = vPlain
	return t
}()

// essentials settles whether the message can be answered: exactly one
// well-formed From, To, Call-ID and CSeq, at least one well-formed Via, and
// sipgo read each of them as we did (an answer is built from sipgo's copy).
func (c *checker) essentials() {
	for _, h := range [...]struct {
		n             int
		missing, many string
	}{
		{c.nVia, "Missing Via", ""},
		{c.nFrom, "Missing From", "Duplicate From"},
		{c.nTo, "Missing To", "Duplicate To"},
		{c.nCallID, "Missing Call-ID", "Duplicate Call-ID"},
		{c.nCSeq, "Missing CSeq", "Duplicate CSeq"},
	} {
		if h.n == 0 {
			c.ess.note(400, h.missing)
		} else if h.n > 1 && h.many != "" {
			c.ess.note(400, h.many)
		}
	}
	if c.ess.code != 0 {
		return
	}
	var nVia, nFrom, nTo, nCallID, nCSeq int
	if hs, ok := c.msg.(interface{ Headers() []sip.Header }); ok {
		for _, h := range hs.Headers() {
			switch h.(type) {
			case *sip.ViaHeader:
				nVia++
			case *sip.FromHeader:
				nFrom++
			case *sip.ToHeader:
				nTo++
			case *sip.CallIDHeader:
				nCallID++
			case *sip.CSeqHeader:
				nCSeq++
			}
		}
	}
	if nVia != c.nVia || nFrom != 1 || nTo != 1 || nCallID != 1 || nCSeq != 1 {
		c.ess.note(400, "Ambiguous Header")
		return
	}
	via, from, to, cid, cseq := c.msg.Via(), c.msg.From(), c.msg.To(), c.msg.CallID(), c.msg.CSeq()
	if via == nil || from == nil || to == nil || cid == nil || cseq == nil {
		c.ess.note(400, "Ambiguous Header")
		return
	}
	if !sameHost(c.topHost, via.Host) || !paramIs(via.Params, "branch", c.topBranch) {
		c.ess.note(400, "Ambiguous Via")
		return
	}
	if !paramIs(from.Params, "tag", c.from.tag) || !paramIs(to.Params, "tag", c.to.tag) {
		c.ess.note(400, "Ambiguous Tag")
		return
	}
	if string(c.callID) != string(*cid) {
		c.ess.note(400, "Ambiguous Call-ID")
		return
	}
	if uint64(cseq.SeqNo) != c.cseqNum || string(c.cseqMethod) != string(cseq.MethodName) {
		c.ess.note(400, "Ambiguous CSeq")
		return
	}
	c.answerable = true
}

// paramIs reports whether sipgo's parameter key holds exactly want, with nil
// want meaning "absent".
func paramIs(p sip.HeaderParams, key string, want []byte) bool {
	got, ok := p.Get(key)
	if want == nil {
		return !ok
	}
	return ok && got == string(want)
}

// body checks Content-Length against the bytes that arrived and what sipgo
// kept, and Content-Type against the body. Per RFC 3261 18.3 bytes after the
// declared body in a datagram are discarded (RFC 4475 dblreq), but a body
// shorter than declared is an error (clerr).
func (c *checker) body() fault {
	avail := len(c.raw) - c.bodyStart
	blen := len(c.msg.Body())
	switch {
	case c.nCL > 1:
		return bad("Duplicate Content-Length")
	case c.nCL == 1:
		if c.cl > uint64(c.o.MaxBodySize) {
			return fault{code: 413, reason: "Request Entity Too Large"}
		}
		if c.cl > uint64(avail) || c.cl != uint64(blen) {
			return bad("Content-Length Mismatch")
		}
		if cl := c.msg.ContentLength(); cl == nil || uint64(*cl) != c.cl {
			return bad("Ambiguous Content-Length")
		}
	default:
		if blen > c.o.MaxBodySize {
			return fault{code: 413, reason: "Request Entity Too Large"}
		}
		if blen != avail {
			return bad("Content-Length Mismatch")
		}
	}
	if c.nCT > 1 {
		return bad("Duplicate Content-Type")
	}
	if blen > 0 && c.nCT == 0 {
		return bad("Missing Content-Type")
	}
	return fault{}
}

// request runs the checks that need the whole request: method and CSeq
// agreement, method policy, Max-Forwards, then the semantic refusals (415,
// 420, 406, 483) that only make sense on an otherwise valid request.
func (c *checker) request() fault {
	if !bytes.Equal(c.cseqMethod, c.method) {
		return bad("CSeq Method Mismatch")
	}
	if !c.allowed() {
		return fault{code: 405, reason: "Method Not Allowed"}
	}
	if string(c.method) != string(c.req.Method) {
		return bad("Ambiguous Method") // sipgo upper-cases methods
	}
	if c.ruriInfo.isSIP() && !sameHost(c.ruriInfo.host, c.req.Recipient.Host) {
		return bad("Ambiguous Request-URI")
	}
	switch {
	case c.nMaxFwd == 0:
		return bad("Missing Max-Forwards")
	case c.nMaxFwd > 1:
		return bad("Duplicate Max-Forwards")
	}
	if mf := c.req.MaxForwards(); mf == nil || uint64(*mf) != c.maxFwd {
		return bad("Ambiguous Max-Forwards")
	}
	if len(c.from.tag) == 0 {
		return bad("Missing From Tag") // RFC 3261 8.1.1.3
	}
	if c.contactStar && (string(c.method) != "REGISTER" || c.nContact > 1) {
		return bad("Malformed Contact")
	}
	if len(c.msg.Body()) > 0 && sdpMethod(c.method) && !(lowerEq(c.ctType, "application") && lowerEq(c.ctSub, "sdp")) {
		return fault{code: 415, reason: "Unsupported Media Type"}
	}
	if c.unsupported != nil {
		return fault{code: 420, reason: "Bad Extension"}
	}
	if string(c.method) == "INVITE" && c.acceptSeen && !c.acceptSDP {
		return fault{code: 406, reason: "Not Acceptable"}
	}
	if c.maxFwd == 0 {
		// A B2BUA forwards every dialog-forming request; REGISTER and
		// OPTIONS with Max-Forwards 0 are scanner traffic in practice.
		return fault{code: 483, reason: "Too Many Hops"}
	}
	return fault{}
}

func (c *checker) allowed() bool {
	for _, m := range c.o.AllowedMethods {
		if m == string(c.method) {
			return true
		}
	}
	return false
}

// sdpMethod lists the methods whose body is an SDP offer or answer.
func sdpMethod(m []byte) bool {
	switch string(m) {
	case "INVITE", "ACK", "UPDATE", "PRACK":
		return true
	}
	return false
}

// sameHost compares our host with sipgo's, which drops IPv6 brackets.
func sameHost(ours []byte, theirs string) bool {
	if len(ours) > 1 && ours[0] == '[' && (len(theirs) == 0 || theirs[0] != '[') {
		ours = ours[1 : len(ours)-1]
	}
	return foldEq(ours, theirs)
}
