// Package sipua is a minimal SIP user agent over TLS for the benchmark load
// tools: enough to register to a registrar (digest, SHA-256 or MD5,
// qop=auth) and to place and answer calls through a proxy or a B2BUA. It is
// test equipment, not part of the product: it trusts what it reads only as
// far as framing needs, and keeps no timers beyond one per transaction.
package sipua

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Msg is one received SIP message.
type Msg struct {
	// Raw is the message exactly as read (ReadMsgRaw only), keep-alives
	// before it left out.
	Raw    []byte
	First  string
	Hdrs   [][2]string // lower-case long header name, value; in order
	Body   []byte
	Method string // requests
	RURI   string
	Code   int // responses
	Reason string
}

var compactHdr = map[string]string{"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact",
	"l": "content-length", "c": "content-type", "k": "supported"}

// Get returns the first value of a header (lower-case long name).
func (m *Msg) Get(name string) string {
	for _, h := range m.Hdrs {
		if h[0] == name {
			return h[1]
		}
	}
	return ""
}

// Canon is a header name as Msg keeps it: lower case, long form.
func Canon(name string) string {
	n := strings.ToLower(name)
	if c, ok := compactHdr[n]; ok {
		return c
	}
	return n
}

// Header returns the first value of a header named in any case or form.
func (m *Msg) Header(name string) string { return m.Get(Canon(name)) }

// StatusOf is the status code of a raw response (0 for a request or
// anything else).
func StatusOf(raw string) int {
	first, _, _ := strings.Cut(raw, "\r\n")
	f := strings.Fields(first)
	if len(f) < 2 || !strings.HasPrefix(f[0], "SIP/") {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// All returns every value of a header, in order.
func (m *Msg) All(name string) []string {
	var out []string
	for _, h := range m.Hdrs {
		if h[0] == name {
			out = append(out, h[1])
		}
	}
	return out
}

// String renders the message with normalised header names (for traces).
func (m *Msg) String() string {
	var b strings.Builder
	b.WriteString(m.First + "\r\n")
	for _, h := range m.Hdrs {
		b.WriteString(h[0] + ": " + h[1] + "\r\n")
	}
	b.WriteString("\r\n" + string(m.Body))
	return b.String()
}

// maxBody bounds Content-Length: no SIP message of the benchmarks is
// anywhere near it, and a larger one means the framing is lost.
const maxBody = 1 << 16

// ReadMsg reads one message from a stream (RFC 3261 18.3: Content-Length
// frames the body). Empty lines before a start line are keep-alives.
func ReadMsg(r *bufio.Reader) (*Msg, error) { return readMsg(r, false) }

// ParseMsg parses one whole message (a datagram).
func ParseMsg(b []byte) (*Msg, error) { return ReadMsg(bufio.NewReader(bytes.NewReader(b))) }

// ReadMsgRaw is ReadMsg that also keeps the message's bytes in Raw, for
// checks of exactly what a server sent.
func ReadMsgRaw(r *bufio.Reader) (*Msg, error) { return readMsg(r, true) }

func readMsg(r *bufio.Reader, keepRaw bool) (*Msg, error) {
	m := &Msg{}
	var raw []byte
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		if keepRaw && (m.First != "" || strings.TrimSpace(line) != "") {
			raw = append(raw, line...)
		}
		line = strings.TrimRight(line, "\r\n")
		if m.First == "" {
			m.First = line
			continue
		}
		if line == "" {
			break
		}
		if (line[0] == ' ' || line[0] == '\t') && len(m.Hdrs) > 0 {
			m.Hdrs[len(m.Hdrs)-1][1] += " " + strings.TrimSpace(line)
			continue
		}
		name, val, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("bad header line %q", line)
		}
		n := strings.ToLower(strings.TrimSpace(name))
		if c, ok := compactHdr[n]; ok {
			n = c
		}
		m.Hdrs = append(m.Hdrs, [2]string{n, strings.TrimSpace(val)})
	}
	cl := 0
	if v := m.Get("content-length"); v != "" {
		var err error
		if cl, err = strconv.Atoi(v); err != nil || cl < 0 || cl > maxBody {
			return nil, fmt.Errorf("bad Content-Length %q", v)
		}
	}
	m.Body = make([]byte, cl)
	if _, err := io.ReadFull(r, m.Body); err != nil {
		return nil, err
	}
	if keepRaw {
		m.Raw = append(raw, m.Body...)
	}
	f := strings.SplitN(m.First, " ", 3)
	if len(f) < 3 {
		return nil, fmt.Errorf("bad start line %q", m.First)
	}
	if f[0] == "SIP/2.0" {
		m.Code, _ = strconv.Atoi(f[1])
		m.Reason = f[2]
		if m.Code < 100 || m.Code > 699 {
			return nil, fmt.Errorf("bad status line %q", m.First)
		}
	} else {
		m.Method, m.RURI = f[0], f[1]
	}
	return m, nil
}

// HeaderParam returns a header parameter (after the name-addr, if any).
func HeaderParam(v, name string) string {
	if i := strings.LastIndexByte(v, '>'); i >= 0 {
		v = v[i+1:]
	}
	for _, p := range strings.Split(v, ";")[1:] {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, name) {
			return val
		}
	}
	return ""
}

// URIOf returns the URI of a name-addr or addr-spec header value.
func URIOf(v string) string {
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			return v[i+1 : i+j]
		}
	}
	u, _, _ := strings.Cut(v, ";")
	return strings.TrimSpace(u)
}

// UserOf returns the user part of a sip: URI.
func UserOf(uri string) string {
	_, rest, ok := strings.Cut(uri, ":")
	if !ok {
		return ""
	}
	u, _, ok := strings.Cut(rest, "@")
	if !ok {
		return ""
	}
	return u
}

// RandHex returns 2n random hex digits (tags, branches, Call-IDs).
func RandHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Register is one REGISTER as a test client writes it by hand (over any
// transport, with or without credentials), byte for byte the same each time.
type Register struct {
	Transport                     string // Via transport: TLS, TCP, UDP
	Via                           string // sent-by host:port
	Branch                        string // the whole branch, z9hG4bK...
	User, Domain, CallID, FromTag string
	CSeq                          int
	Contact                       string // the whole Contact value
	Expires                       int
	Auth                          string // Authorization value, or ""
	Agent                         string // User-Agent
}

// String renders the request.
func (r Register) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "REGISTER sip:%s SIP/2.0\r\n", r.Domain)
	fmt.Fprintf(&b, "Via: SIP/2.0/%s %s;branch=%s;rport\r\n", r.Transport, r.Via, r.Branch)
	fmt.Fprintf(&b, "Max-Forwards: 70\r\n")
	fmt.Fprintf(&b, "From: <sip:%s@%s>;tag=%s\r\n", r.User, r.Domain, r.FromTag)
	fmt.Fprintf(&b, "To: <sip:%s@%s>\r\n", r.User, r.Domain)
	fmt.Fprintf(&b, "Call-ID: %s\r\n", r.CallID)
	fmt.Fprintf(&b, "CSeq: %d REGISTER\r\n", r.CSeq)
	fmt.Fprintf(&b, "Contact: %s\r\n", r.Contact)
	fmt.Fprintf(&b, "Expires: %d\r\n", r.Expires)
	if r.Auth != "" {
		fmt.Fprintf(&b, "Authorization: %s\r\n", r.Auth)
	}
	fmt.Fprintf(&b, "User-Agent: %s\r\n", r.Agent)
	fmt.Fprintf(&b, "Content-Length: 0\r\n\r\n")
	return b.String()
}
