package sanity

import "bytes"

type kind uint8

const (
	hOther kind = iota
	hVia
	hFrom
	hTo
	hCallID
	hCSeq
	hMaxFwd
	hCL
	hCT
	hContact
	hRoute
	hRecordRoute
	hExpires
	hDate
	hRequire
	hProxyRequire
	hAccept
	hAuthz
	hProxyAuthz
)

// classify maps a header name, long or compact form, in any case, to the
// headers this package reads. It lower-cases into a stack buffer so the
// string switch does not allocate.
func classify(name []byte) kind {
	if len(name) == 1 {
		switch name[0] | 0x20 {
		case 'v':
			return hVia
		case 'f':
			return hFrom
		case 't':
			return hTo
		case 'i':
			return hCallID
		case 'l':
			return hCL
		case 'c':
			return hCT
		case 'm':
			return hContact
		}
		return hOther
	}
	var buf [19]byte
	if len(name) > len(buf) {
		return hOther
	}
	for i, b := range name {
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		buf[i] = b
	}
	switch string(buf[:len(name)]) {
	case "via":
		return hVia
	case "from":
		return hFrom
	case "to":
		return hTo
	case "call-id":
		return hCallID
	case "cseq":
		return hCSeq
	case "max-forwards":
		return hMaxFwd
	case "content-length":
		return hCL
	case "content-type":
		return hCT
	case "contact":
		return hContact
	case "route":
		return hRoute
	case "record-route":
		return hRecordRoute
	case "expires":
		return hExpires
	case "date":
		return hDate
	case "require":
		return hRequire
	case "proxy-require":
		return hProxyRequire
	case "accept":
		return hAccept
	case "authorization":
		return hAuthz
	case "proxy-authorization":
		return hProxyAuthz
	}
	return hOther
}

// header validates one header field value (folds included) by kind.
func (c *checker) header(k kind, v []byte) {
	switch k {
	case hVia:
		if r := c.via(v); r != "" {
			c.ess.note(400, r)
		}
	case hFrom:
		c.nFrom++
		if c.nFrom == 1 {
			c.fromTo(v, &c.from, "Malformed From")
		}
	case hTo:
		c.nTo++
		if c.nTo == 1 {
			c.fromTo(v, &c.to, "Malformed To")
		}
	case hCallID:
		c.nCallID++
		c.callID = trimLWS(v)
		if !validCallID(c.callID) {
			c.ess.note(400, "Malformed Call-ID")
		}
	case hCSeq:
		c.nCSeq++
		if !c.cseq(v) {
			c.ess.note(400, "Malformed CSeq")
		}
	case hMaxFwd:
		c.nMaxFwd++
		n, ok := parseUint(trimLWS(v), 255)
		if !ok {
			c.hdr.note(400, "Malformed Max-Forwards")
		}
		c.maxFwd = n
	case hCL:
		c.nCL++
		n, ok := parseUint(trimLWS(v), 1<<31)
		switch {
		case !ok && len(trimLWS(v)) > 10 && allDigits(trimLWS(v)):
			c.hdr.note(413, "Request Entity Too Large")
		case !ok:
			c.hdr.note(400, "Malformed Content-Length")
		}
		c.cl = n
	case hCT:
		c.nCT++
		t, s, e := mediaType(v, 0)
		if e < 0 || skipLWS(v, e) != len(v) {
			c.hdr.note(400, "Malformed Content-Type")
		}
		c.ctType, c.ctSub = t, s
	case hContact:
		if r := c.contact(v); r != "" {
			c.hdr.note(400, r)
		}
	case hRoute, hRecordRoute:
		if !routeList(v) {
			c.hdr.note(400, "Malformed Route")
		}
	case hExpires:
		c.nExpires++
		if _, ok := parseUint(trimLWS(v), 1<<32-1); !ok || c.nExpires > 1 {
			c.hdr.note(400, "Malformed Expires")
		}
	case hDate:
		c.nDate++
		if !validDate(trimLWS(v)) || c.nDate > 1 {
			c.hdr.note(400, "Malformed Date")
		}
	case hRequire, hProxyRequire:
		if !c.require(v) {
			c.hdr.note(400, "Malformed Require")
		}
	case hAccept:
		if c.req != nil && string(c.method) == "INVITE" && !c.accept(v) {
			c.hdr.note(400, "Malformed Accept")
		}
	case hAuthz, hProxyAuthz:
		// Only Digest is served; an unknown scheme (RFC 4475 regaut01)
		// would otherwise reach the authenticator as an opaque blob.
		t := trimLWS(v)
		e := span(t, 0, cToken)
		if !foldEq(t[:e], "Digest") || e == len(t) || !isLWS(t[e]) {
			c.hdr.note(400, "Unsupported Authorization Scheme")
		}
	}
}

func allDigits(v []byte) bool {
	for _, b := range v {
		if !isDigit(b) {
			return false
		}
	}
	return len(v) > 0
}

// via validates a Via field: a comma list of via-parm, each
// SIP/2.0/transport sent-by with an RFC 3261 branch (RFC 2543 peers, which
// send none, are refused: their transactions cannot be matched safely).
func (c *checker) via(v []byte) string {
	i := 0
	for {
		i = skipLWS(v, i)
		e := span(v, i, cToken)
		if !foldEq(v[i:e], "SIP") {
			return "Malformed Via"
		}
		if i = skipLWS(v, e); i >= len(v) || v[i] != '/' {
			return "Malformed Via"
		}
		i = skipLWS(v, i+1)
		e = span(v, i, cToken)
		if string(v[i:e]) != "2.0" {
			return "Malformed Via"
		}
		if i = skipLWS(v, e); i >= len(v) || v[i] != '/' {
			return "Malformed Via"
		}
		i = skipLWS(v, i+1)
		if e = span(v, i, cToken); e == i || e >= len(v) || !isLWS(v[e]) {
			return "Malformed Via"
		}
		h, e, ok := hostAt(v, skipLWS(v, e))
		if !ok || !h.routable() {
			return "Bad Via Host"
		}
		i = skipLWS(v, e)
		if i < len(v) && v[i] == ':' {
			if i, ok = portAt(v, skipLWS(v, i+1)); !ok {
				return "Bad Via Port"
			}
		}
		var branch []byte
		nBranch := 0
		for {
			i = skipLWS(v, i)
			if i >= len(v) || v[i] != ';' {
				break
			}
			i = skipLWS(v, i+1)
			e = span(v, i, cToken)
			if e == i {
				return "Malformed Via"
			}
			name := v[i:e]
			var val []byte
			hasVal := false
			if i = skipLWS(v, e); i < len(v) && v[i] == '=' {
				i = skipLWS(v, i+1)
				e = genValue(v, i)
				if e <= i {
					return "Malformed Via"
				}
				val, hasVal, i = v[i:e], true, e
			}
			switch {
			case lowerEq(name, "branch"):
				nBranch++
				branch = val
			case lowerEq(name, "received"):
				if !validReceived(val) {
					return "Malformed Via"
				}
			case lowerEq(name, "rport"):
				if hasVal {
					if e, ok := portAt(val, 0); !ok || e != len(val) {
						return "Malformed Via"
					}
				}
			case lowerEq(name, "ttl"):
				if _, ok := parseUint(val, 255); !ok {
					return "Malformed Via"
				}
			}
		}
		if nBranch != 1 || len(branch) <= 7 || string(branch[:7]) != "z9hG4bK" || branch[0] == '"' {
			return "Missing RFC 3261 Branch"
		}
		c.nVia++
		if c.nVia == 1 {
			c.topHost, c.topBranch = h.b, branch
		}
		if i >= len(v) {
			return ""
		}
		if v[i] != ',' {
			return "Malformed Via"
		}
		i++
	}
}

// validReceived accepts an IPv4 or bare IPv6 address (RFC 3261 received).
func validReceived(v []byte) bool {
	if bytes.IndexByte(v, ':') >= 0 {
		a, ok := parseIPv6(v)
		return ok && (hostRef{kind: hostV6, v6: a}).routable()
	}
	a, _, ok := parseIPv4(v)
	return ok && (hostRef{kind: hostV4, v4: a}).routable()
}

// genValue returns the end of a gen-value (token, host or quoted-string)
// at v[i], or -1.
func genValue(v []byte, i int) int {
	if i < len(v) && v[i] == '"' {
		return quoted(v, i)
	}
	return span(v, i, cGen)
}

type addr struct {
	uri      uriInfo
	tag      []byte // nil when absent
	ntag     int
	badParam bool
}

// nameAddr parses a name-addr or addr-spec with its header parameters at
// v[i], stopping at a ',' or the end. It returns the stop index or -1.
// RFC 3261 20: an addr-spec whose URI holds ",", ";" or "?" must be in
// angle brackets, and nothing may sit between "<" ">" and the URI (RFC
// 4475 badaspec, regbadct, baddn, quotbal).
func nameAddr(v []byte, i int, a *addr, needBrackets bool) int {
	i = skipLWS(v, i)
	if i >= len(v) {
		return -1
	}
	if v[i] == '"' {
		if i = quoted(v, i); i < 0 {
			return -1
		}
		if i = skipLWS(v, i); i >= len(v) || v[i] != '<' {
			return -1
		}
	} else {
		j := i
		for j < len(v) && (is(v[j], cToken) || isLWS(v[j])) {
			j++
		}
		if j < len(v) && v[j] == '<' {
			i = j
		}
	}
	var uri []byte
	if v[i] == '<' {
		e := bytes.IndexByte(v[i+1:], '>')
		if e < 0 {
			return -1
		}
		uri = v[i+1 : i+1+e]
		i += e + 2
	} else {
		if needBrackets {
			return -1
		}
		s := i
		for i < len(v) && !isLWS(v[i]) && v[i] != ';' && v[i] != ',' {
			i++
		}
		uri = v[s:i]
		if bytes.IndexByte(uri, '?') >= 0 {
			return -1
		}
	}
	info, ok := checkURI(uri)
	if !ok {
		return -1
	}
	a.uri = info
	for {
		i = skipLWS(v, i)
		if i >= len(v) || v[i] != ';' {
			return i
		}
		i = skipLWS(v, i+1)
		e := span(v, i, cToken)
		if e == i {
			return -1
		}
		name := v[i:e]
		var val []byte
		if i = skipLWS(v, e); i < len(v) && v[i] == '=' {
			i = skipLWS(v, i+1)
			if e = genValue(v, i); e <= i {
				return -1
			}
			val, i = v[i:e], e
		}
		switch {
		case lowerEq(name, "tag"):
			a.ntag++
			a.tag = val
			if len(val) == 0 || span(val, 0, cToken) != len(val) {
				a.badParam = true
			}
		case lowerEq(name, "expires"):
			if _, ok := parseUint(val, 1<<32-1); !ok {
				a.badParam = true
			}
		case lowerEq(name, "q"):
			if !validQ(val) {
				a.badParam = true
			}
		}
	}
}

// validQ accepts qvalue: "0" ["." 0*3DIGIT] / "1" ["." 0*3"0"].
func validQ(v []byte) bool {
	if len(v) == 0 || len(v) > 5 || (v[0] != '0' && v[0] != '1') {
		return false
	}
	if len(v) == 1 {
		return true
	}
	if v[1] != '.' {
		return false
	}
	for _, b := range v[2:] {
		if !isDigit(b) || (v[0] == '1' && b != '0') {
			return false
		}
	}
	return true
}

// fromTo validates From or To. Syntax faults make the message unanswerable
// (the answer copies these fields); an unknown scheme only refuses it.
func (c *checker) fromTo(v []byte, a *addr, malformed string) {
	if nameAddr(v, 0, a, false) != len(v) || a.badParam {
		c.ess.note(400, malformed)
		return
	}
	if a.ntag > 1 {
		c.ess.note(400, "Duplicate Tag")
		return
	}
	if a.uri.scheme == schemeOther {
		c.hdr.note(400, "Unsupported URI Scheme")
	}
}

// contact validates a Contact field: "*" or a comma list of sip/sips
// addresses. In requests the URIs may not carry headers: a binding or
// target with an embedded Route would be replayed into later requests
// (RFC 4475 regescrt).
func (c *checker) contact(v []byte) string {
	if t := trimLWS(v); len(t) == 1 && t[0] == '*' {
		c.contactStar = true
		c.nContact++
		return ""
	}
	i := 0
	for {
		var a addr
		if i = nameAddr(v, i, &a, false); i < 0 || a.badParam {
			return "Malformed Contact"
		}
		if !a.uri.isSIP() {
			return "Unsupported Contact URI Scheme"
		}
		if a.uri.headers && c.req != nil {
			return "Headers In Contact URI"
		}
		c.nContact++
		if i >= len(v) {
			return ""
		}
		if v[i] != ',' {
			return "Malformed Contact"
		}
		i++
	}
}

// routeList validates Route and Record-Route: bracketed sip/sips URIs.
func routeList(v []byte) bool {
	i := 0
	for {
		var a addr
		if i = nameAddr(v, i, &a, true); i < 0 || !a.uri.isSIP() || a.uri.headers {
			return false
		}
		if i >= len(v) {
			return true
		}
		if v[i] != ',' {
			return false
		}
		i++
	}
}

// validCallID accepts word ["@" word] (RFC 3261 25.1).
func validCallID(v []byte) bool {
	e := span(v, 0, cWord)
	if e == 0 {
		return false
	}
	if e < len(v) && v[e] == '@' {
		f := span(v, e+1, cWord)
		if f == e+1 {
			return false
		}
		e = f
	}
	return e == len(v)
}

// cseq validates 1*DIGIT LWS Method with the number below 2**31.
func (c *checker) cseq(v []byte) bool {
	i := skipLWS(v, 0)
	e := i
	for e < len(v) && isDigit(v[e]) {
		e++
	}
	n, ok := parseUint(v[i:e], 1<<31-1)
	if !ok || e >= len(v) || !isLWS(v[e]) {
		return false
	}
	i = skipLWS(v, e)
	e = span(v, i, cToken)
	if e == i || skipLWS(v, e) != len(v) {
		return false
	}
	c.cseqNum, c.cseqMethod = n, v[i:e]
	return true
}

// mediaType parses type SLASH subtype *(SEMI parameter) at v[i] and returns
// the type, subtype and the index after it (before a ',' or the end), or -1.
func mediaType(v []byte, i int) (typ, sub []byte, end int) {
	i = skipLWS(v, i)
	e := span(v, i, cToken)
	if e == i {
		return nil, nil, -1
	}
	typ = v[i:e]
	if i = skipLWS(v, e); i >= len(v) || v[i] != '/' {
		return nil, nil, -1
	}
	i = skipLWS(v, i+1)
	if e = span(v, i, cToken); e == i {
		return nil, nil, -1
	}
	sub = v[i:e]
	i = e
	for {
		i = skipLWS(v, i)
		if i >= len(v) || v[i] != ';' {
			return typ, sub, i
		}
		i = skipLWS(v, i+1)
		if e = span(v, i, cToken); e == i {
			return nil, nil, -1
		}
		if i = skipLWS(v, e); i >= len(v) || v[i] != '=' {
			continue // accept-extension may be a bare token
		}
		i = skipLWS(v, i+1)
		if i < len(v) && v[i] == '"' {
			e = quoted(v, i)
		} else {
			e = span(v, i, cToken)
		}
		if e <= i {
			return nil, nil, -1
		}
		i = e
	}
}

// accept notes, for an INVITE, whether the answer may carry SDP (RFC 4475
// sdp01). An empty Accept means nothing is acceptable.
func (c *checker) accept(v []byte) bool {
	c.acceptSeen = true
	if len(trimLWS(v)) == 0 {
		return true
	}
	i := 0
	for {
		t, s, e := mediaType(v, i)
		if e < 0 {
			return false
		}
		if (string(t) == "*" && string(s) == "*") || (lowerEq(t, "application") && (string(s) == "*" || lowerEq(s, "sdp"))) {
			c.acceptSDP = true
		}
		if e >= len(v) {
			return true
		}
		if v[e] != ',' {
			return false
		}
		i = e + 1
	}
}

// require validates a comma list of option tags and notes the first that
// is not in SupportedExtensions (RFC 4475 bext01).
func (c *checker) require(v []byte) bool {
	i := 0
	for {
		i = skipLWS(v, i)
		e := span(v, i, cToken)
		if e == i {
			return false
		}
		if c.unsupported == nil && !c.supported(v[i:e]) {
			c.unsupported = v[i:e]
		}
		if i = skipLWS(v, e); i >= len(v) {
			return true
		}
		if v[i] != ',' {
			return false
		}
		i++
	}
}

func (c *checker) supported(tag []byte) bool {
	for _, s := range c.o.SupportedExtensions {
		if foldEq(tag, s) {
			return true
		}
	}
	return false
}

// validDate accepts only rfc1123-date in GMT, "Sun, 06 Nov 1994 08:49:37
// GMT" (RFC 3261 20.17; RFC 4475 baddate).
func validDate(v []byte) bool {
	if len(v) != 29 || v[3] != ',' || v[4] != ' ' || v[7] != ' ' || v[11] != ' ' ||
		v[16] != ' ' || v[19] != ':' || v[22] != ':' || v[25] != ' ' || string(v[26:]) != "GMT" {
		return false
	}
	switch string(v[:3]) {
	case "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun":
	default:
		return false
	}
	switch string(v[8:11]) {
	case "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec":
	default:
		return false
	}
	for _, r := range [...]struct {
		s, e int
		max  uint64
	}{{5, 7, 31}, {12, 16, 9999}, {17, 19, 23}, {20, 22, 59}, {23, 25, 60}} {
		if _, ok := parseUint(v[r.s:r.e], r.max); !ok {
			return false
		}
	}
	return true
}
