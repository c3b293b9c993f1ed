package sipedge

import (
	"bytes"
	"errors"
	"strconv"
)

// framer cuts a TCP/TLS byte stream into whole SIP messages by their
// Content-Length (RFC 3261 18.3), so each message is parsed, checked and
// handled from its own complete bytes. Keep-alive CRLFs between messages
// are skipped; only there, never inside a message.
type framer struct {
	buf []byte
	max int
}

var (
	errFrameTooLarge = errors.New("message too large")
	errFrameNoLength = errors.New("stream message without a valid Content-Length")
)

// push appends read bytes.
func (f *framer) push(b []byte) { f.buf = append(f.buf, b...) }

// next returns the next whole message (valid until the next push), or nil
// when more bytes are needed. An error means framing is lost.
func (f *framer) next() ([]byte, error) {
	i := 0
	for i < len(f.buf) && (f.buf[i] == '\r' || f.buf[i] == '\n') {
		i++
	}
	if i > 0 {
		f.buf = f.buf[i:]
	}
	if len(f.buf) == 0 {
		f.buf = f.buf[:0]
		return nil, nil
	}
	end := bytes.Index(f.buf, []byte("\r\n\r\n"))
	if end < 0 {
		if len(f.buf) > f.max {
			return nil, errFrameTooLarge
		}
		return nil, nil
	}
	head := f.buf[:end+2]
	cl, ok := contentLength(head)
	if !ok {
		return nil, errFrameNoLength
	}
	total := end + 4 + cl
	if total > f.max {
		return nil, errFrameTooLarge
	}
	if len(f.buf) < total {
		return nil, nil
	}
	msg := f.buf[:total:total]
	f.buf = f.buf[total:]
	return msg, nil
}

// compact moves what is left to the front so the buffer does not grow.
func (f *framer) compact() {
	if cap(f.buf) > 4*f.max && len(f.buf) < f.max {
		f.buf = append([]byte(nil), f.buf...)
	}
}

// contentLength finds the one Content-Length (or compact "l") header in a
// header block ending in CRLF. A missing, repeated or malformed one is
// not ok: on a stream the message's end cannot be known.
func contentLength(head []byte) (int, bool) {
	n, found := 0, false
	for len(head) > 0 {
		line := head
		if j := bytes.Index(head, []byte("\r\n")); j >= 0 {
			line, head = head[:j], head[j+2:]
		} else {
			head = nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		name := bytes.TrimSpace(line[:colon])
		if !bytes.EqualFold(name, []byte("Content-Length")) && !bytes.EqualFold(name, []byte("l")) {
			continue
		}
		if found {
			return 0, false
		}
		v, err := strconv.Atoi(string(bytes.TrimSpace(line[colon+1:])))
		if err != nil || v < 0 {
			return 0, false
		}
		n, found = v, true
	}
	return n, found
}
