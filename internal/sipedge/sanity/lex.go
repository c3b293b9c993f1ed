package sanity

// Character classes from the RFC 3261 section 25 grammar. One table lookup per
// byte keeps the whole check free of regular expressions and allocations.
const (
	cToken  uint16 = 1 << iota // token: alphanum - . ! % * _ + ` ' ~
	cWord                      // Call-ID word: token plus ( ) < > : \ " / [ ] ? { }
	cUnres                     // unreserved: alphanum - _ . ! ~ * ' ( )
	cUser                      // user: unreserved plus & = + $ , ; ? /
	cPass                      // password: unreserved plus & = + $ ,
	cParam                     // paramchar: unreserved plus [ ] / : & + $
	cHnv                       // hname/hvalue: unreserved plus [ ] / ? : + $
	cHost                      // hostname: alphanum - .
	cScheme                    // scheme tail: alphanum + - .
	cTel                       // tel number: HEXDIG * # - . ( ) +
	cGen                       // gen-value without quotes: token plus the host bytes : [ ]
)

var class = func() (t [256]uint16) {
	set := func(chars string, bits uint16) {
		for i := 0; i < len(chars); i++ {
			t[chars[i]] |= bits
		}
	}
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	all := cToken | cWord | cUnres | cUser | cPass | cParam | cHnv | cHost | cScheme | cGen
	set(alnum, all)
	set("-.!%*_+`'~", cToken|cWord|cGen)
	set(":[]", cGen)
	set("()<>:\\\"/[]?{}", cWord)
	set("-_.!~*'()", cUnres|cUser|cPass|cParam|cHnv)
	set("&=+$,;?/", cUser)
	set("&=+$,", cPass)
	set("[]/:&+$", cParam)
	set("[]/?:+$", cHnv)
	set("-.", cHost)
	set("+-.", cScheme)
	set("0123456789abcdefABCDEF*#-.()+", cTel)
	return t
}()

func is(b byte, c uint16) bool { return class[b]&c != 0 }

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

func isAlpha(b byte) bool { return ('a' <= b && b <= 'z') || ('A' <= b && b <= 'Z') }

func isHex(b byte) bool {
	return isDigit(b) || ('a' <= b && b <= 'f') || ('A' <= b && b <= 'F')
}

// isLWS reports linear white space. Folding (CRLF followed by SP or HTAB) was
// verified by the header scan, so inside a header value CR and LF can only be
// part of a fold and count as white space.
func isLWS(b byte) bool { return b == ' ' || b == '\t' || b == '\r' || b == '\n' }

func skipLWS(v []byte, i int) int {
	for i < len(v) && isLWS(v[i]) {
		i++
	}
	return i
}

func trimLWS(v []byte) []byte {
	for len(v) > 0 && isLWS(v[0]) {
		v = v[1:]
	}
	for len(v) > 0 && isLWS(v[len(v)-1]) {
		v = v[:len(v)-1]
	}
	return v
}

// span returns the end of the run of bytes in class c starting at i.
func span(v []byte, i int, c uint16) int {
	for i < len(v) && class[v[i]]&c != 0 {
		i++
	}
	return i
}

// spanEsc is span that also accepts %HH escapes; it returns -1 on a broken
// escape so that "%Z" or a trailing "%" is an error, not a stop.
func spanEsc(v []byte, i int, c uint16) int {
	for i < len(v) {
		switch b := v[i]; {
		case b == '%':
			if i+2 >= len(v) || !isHex(v[i+1]) || !isHex(v[i+2]) {
				return -1
			}
			i += 3
		case class[b]&c != 0:
			i++
		default:
			return i
		}
	}
	return i
}

// lowerEq compares b with the lower-case ASCII literal s, ignoring case.
func lowerEq(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// foldEq compares two byte strings ignoring ASCII case.
func foldEq(a []byte, s string) bool {
	if len(a) != len(s) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// parseUint parses 1*DIGIT, returning ok=false on an empty value, any other
// byte, or a value above limit (the check stops before it can overflow).
func parseUint(v []byte, limit uint64) (uint64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	var n uint64
	for _, b := range v {
		if !isDigit(b) {
			return 0, false
		}
		n = n*10 + uint64(b-'0')
		if n > limit {
			return 0, false
		}
	}
	return n, true
}

// quoted scans a quoted-string starting at v[i] == '"' and returns the index
// after the closing quote, or -1 if it is unterminated or holds a bare CTL.
func quoted(v []byte, i int) int {
	i++
	for i < len(v) {
		switch b := v[i]; {
		case b == '"':
			return i + 1
		case b == '\\':
			if i+1 >= len(v) || v[i+1] == '\r' || v[i+1] == '\n' || v[i+1] >= 0x80 {
				return -1
			}
			i += 2
		case b == '\t' || b == '\r' || b == '\n' || b >= 0x20 && b != 0x7f:
			i++
		default:
			return -1
		}
	}
	return -1
}
