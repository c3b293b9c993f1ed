package sanity

import (
	"bytes"
	"net/netip"
)

// URI schemes the check tells apart. Only sip, sips and tel reach routing;
// any other well-formed scheme is reported so the caller can answer 416
// (Request-URI) or refuse the header.
const (
	schemeSIP = iota + 1
	schemeSIPS
	schemeTel
	schemeOther
)

type uriInfo struct {
	scheme  int
	host    []byte // sip and sips: the host as written (IPv6 with brackets)
	headers bool   // sip and sips: a "?" headers part is present
}

func (u uriInfo) isSIP() bool { return u.scheme == schemeSIP || u.scheme == schemeSIPS }

// checkURI validates an absolute URI as it appears in a Request-URI or inside
// a name-addr: no white space, no unescaped "<>", escapes complete. ok=false
// means malformed; a well-formed URI of an unknown scheme is ok with
// scheme == schemeOther.
func checkURI(u []byte) (info uriInfo, ok bool) {
	if len(u) == 0 || !isAlpha(u[0]) {
		return info, false
	}
	i := span(u, 1, cScheme)
	if i >= len(u) || u[i] != ':' {
		return info, false
	}
	sch, rest := u[:i], u[i+1:]
	switch {
	case lowerEq(sch, "sip"):
		info.scheme = schemeSIP
	case lowerEq(sch, "sips"):
		info.scheme = schemeSIPS
	case lowerEq(sch, "tel"):
		info.scheme = schemeTel
		return info, checkTel(rest)
	default:
		info.scheme = schemeOther
		return info, checkOpaque(rest)
	}
	return info, checkSIPRest(rest, &info)
}

// checkSIPRest validates what follows "sip:" per RFC 3261 section 25.1:
// [userinfo "@"] hostport *(";" param) ["?" headers].
func checkSIPRest(rest []byte, info *uriInfo) bool {
	i := 0
	if at := bytes.IndexByte(rest, '@'); at >= 0 {
		// "@" cannot occur unescaped anywhere else in a SIP URI, so the
		// first one ends the userinfo; the host check rejects a second.
		ui := rest[:at]
		e := spanEsc(ui, 0, cUser)
		if e <= 0 {
			return false
		}
		if e < len(ui) {
			if ui[e] != ':' || spanEsc(ui, e+1, cPass) != len(ui) {
				return false
			}
		}
		i = at + 1
	}
	h, j, ok := hostAt(rest, i)
	if !ok {
		return false
	}
	info.host = h.b
	if j < len(rest) && rest[j] == ':' {
		if j, ok = portAt(rest, j+1); !ok {
			return false
		}
	}
	for j < len(rest) && rest[j] == ';' {
		k := spanEsc(rest, j+1, cParam)
		if k <= j+1 {
			return false
		}
		if k < len(rest) && rest[k] == '=' {
			m := spanEsc(rest, k+1, cParam)
			if m <= k+1 {
				return false
			}
			k = m
		}
		j = k
	}
	if j < len(rest) && rest[j] == '?' {
		info.headers = true
		for {
			k := spanEsc(rest, j+1, cHnv)
			if k <= j+1 || k >= len(rest) || rest[k] != '=' {
				return false
			}
			if j = spanEsc(rest, k+1, cHnv); j < 0 {
				return false
			}
			if j < len(rest) && rest[j] == '&' {
				continue
			}
			break
		}
	}
	return j == len(rest)
}

// checkTel validates an RFC 3966 telephone-subscriber loosely: a number of
// digits, hex digits, "*", "#", "+" and visual separators, then parameters.
func checkTel(rest []byte) bool {
	i := span(rest, 0, cTel)
	if i == 0 {
		return false
	}
	for i < len(rest) && rest[i] == ';' {
		k := span(rest, i+1, cHost)
		if k == i+1 {
			return false
		}
		if k < len(rest) && rest[k] == '=' {
			m := spanEsc(rest, k+1, cParam)
			if m <= k+1 {
				return false
			}
			k = m
		}
		i = k
	}
	return i == len(rest)
}

// checkOpaque accepts the RFC 3986 URI characters for schemes we do not
// interpret, so that the caller can tell "unsupported" from "garbage".
func checkOpaque(rest []byte) bool {
	if len(rest) == 0 {
		return false
	}
	for _, b := range rest {
		if b <= ' ' || b >= 0x7f {
			return false
		}
		switch b {
		case '<', '>', '"', '\\', '^', '`', '{', '|', '}':
			return false
		}
	}
	return true
}

const (
	hostName = iota + 1
	hostV4
	hostV6
)

type hostRef struct {
	b    []byte
	kind int
	v4   [4]byte
	v6   netip.Addr
}

// routable rejects the addresses no SIP element may ask us to send to: the
// unspecified address, limited broadcast and multicast (RFC 4475 bcast).
func (h hostRef) routable() bool {
	switch h.kind {
	case hostV4:
		return h.v4[0] != 0 && !(h.v4[0] >= 224 && h.v4[0] <= 239) && h.v4 != [4]byte{255, 255, 255, 255}
	case hostV6:
		return !h.v6.IsUnspecified() && !h.v6.IsMulticast()
	}
	return true
}

// hostAt parses host (hostname, IPv4address or IPv6reference) at v[i].
func hostAt(v []byte, i int) (h hostRef, end int, ok bool) {
	if i >= len(v) {
		return h, i, false
	}
	if v[i] == '[' {
		k := bytes.IndexByte(v[i:], ']')
		if k < 3 || k > 46 {
			return h, i, false
		}
		a, ok := parseIPv6(v[i+1 : i+k])
		if !ok {
			return h, i, false
		}
		return hostRef{b: v[i : i+k+1], kind: hostV6, v6: a}, i + k + 1, true
	}
	e := span(v, i, cHost)
	h.b = v[i:e]
	if a, isNum, ok := parseIPv4(h.b); isNum {
		h.kind, h.v4 = hostV4, a
		return h, e, ok
	}
	h.kind = hostName
	return h, e, validHostname(h.b)
}

// parseIPv6 uses netip for the rare IPv6 literal; the string conversion is
// the only allocation this package makes on a valid message.
func parseIPv6(b []byte) (netip.Addr, bool) {
	for _, c := range b {
		if !isHex(c) && c != ':' && c != '.' {
			return netip.Addr{}, false
		}
	}
	a, err := netip.ParseAddr(string(b))
	if err != nil || !a.Is6() || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a, true
}

// parseIPv4 reports isNum when b has only digits and dots (so it must be an
// IPv4 address, not a hostname) and ok when it is a valid dotted quad.
func parseIPv4(b []byte) (a [4]byte, isNum, ok bool) {
	if len(b) == 0 {
		return a, false, false
	}
	for _, c := range b {
		if !isDigit(c) && c != '.' {
			return a, false, false
		}
	}
	part, n, digits := 0, 0, 0
	for _, c := range b {
		if c == '.' {
			if digits == 0 || part > 3 {
				return a, true, false
			}
			a[part] = byte(n)
			part, n, digits = part+1, 0, 0
			continue
		}
		n = n*10 + int(c-'0')
		digits++
		if digits > 3 || n > 255 {
			return a, true, false
		}
	}
	if digits == 0 || part != 3 {
		return a, true, false
	}
	a[3] = byte(n)
	return a, true, true
}

// validHostname applies RFC 3261 hostname: dot-separated labels of
// alphanumerics and inner hyphens, the last starting with a letter.
func validHostname(h []byte) bool {
	if len(h) == 0 || len(h) > 253 {
		return false
	}
	if h[len(h)-1] == '.' {
		h = h[:len(h)-1]
	}
	start, last := 0, 0
	for i := 0; i <= len(h); i++ {
		if i < len(h) && h[i] != '.' {
			continue
		}
		l := h[start:i]
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		last, start = start, i+1
	}
	return isAlpha(h[last])
}

// portAt parses 1*DIGIT at v[i] and requires 1..65535.
func portAt(v []byte, i int) (int, bool) {
	e := i
	for e < len(v) && isDigit(v[e]) {
		e++
	}
	n, ok := parseUint(v[i:e], 65535)
	return e, ok && n > 0
}
