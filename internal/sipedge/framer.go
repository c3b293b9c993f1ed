package sipedge

import (
	"bytes"
	"errors"
	"strconv"
	"time"
)

// framer cuts a TCP/TLS byte stream into whole SIP messages by their
// Content-Length (RFC 3261 18.3), so each message is parsed, checked and
// handled from its own complete bytes. Keep-alive CRLFs between messages
// are skipped; only there, never inside a message.
//
// It keeps no buffer of its own while the stream is between messages:
// whole messages are cut straight from the caller's read buffer, and only
// the bytes of an unfinished message are copied (compact), so an idle
// connection holds nothing here.
type framer struct {
	buf []byte // saved bytes of an unfinished message (src points into it)
	src []byte // what next cuts from: a suffix of buf, or the caller's bytes
	own bool   // src is inside buf rather than the caller's buffer
	max int
	cut bool // next returned a message since the last compact
	// started is when the unfinished message's first byte arrived (zero
	// between messages), for the deadline on completing a message.
	started time.Time
}

var (
	errFrameTooLarge = errors.New("message too large")
	errFrameNoLength = errors.New("stream message without a valid Content-Length")
)

// push adds read bytes; they are used in place until compact.
func (f *framer) push(b []byte) {
	if len(f.src) == 0 {
		f.src, f.own = b, false
		return
	}
	if !f.own {
		f.buf = append(f.buf[:0], f.src...)
	} else {
		f.buf = f.buf[:copy(f.buf, f.src)]
	}
	f.buf = append(f.buf, b...)
	f.src, f.own = f.buf, true
}

// pending reports bytes of an unfinished message (not keep-alives).
func (f *framer) pending() bool { return len(f.src) > 0 }

// next returns the next whole message (valid until the next push or
// compact), or nil when more bytes are needed. An error means framing is
// lost.
func (f *framer) next() ([]byte, error) {
	i := 0
	for i < len(f.src) && (f.src[i] == '\r' || f.src[i] == '\n') {
		i++
	}
	f.src = f.src[i:]
	if len(f.src) == 0 {
		return nil, nil
	}
	end := bytes.Index(f.src, []byte("\r\n\r\n"))
	if end < 0 {
		if len(f.src) > f.max {
			return nil, errFrameTooLarge
		}
		return nil, nil
	}
	cl, ok := contentLength(f.src[:end+2])
	if !ok {
		return nil, errFrameNoLength
	}
	total := end + 4 + cl
	if total > f.max {
		return nil, errFrameTooLarge
	}
	if len(f.src) < total {
		return nil, nil
	}
	msg := f.src[:total:total]
	f.src = f.src[total:]
	f.cut = true
	return msg, nil
}

// compact saves what is left of an unfinished message before the caller
// reuses its buffer, and lets go of a large buffer once nothing is left.
// now is when the bytes just pushed arrived.
func (f *framer) compact(now time.Time) {
	if len(f.src) == 0 {
		f.src, f.own, f.started = nil, false, time.Time{}
		if cap(f.buf) > 4096 {
			f.buf = nil
		}
		f.buf = f.buf[:0]
		f.cut = false
		return
	}
	if f.started.IsZero() || f.cut {
		// The unfinished message began in the bytes just pushed.
		f.started = now
	}
	f.cut = false
	if !f.own {
		f.buf = append(f.buf[:0], f.src...)
	} else {
		f.buf = f.buf[:copy(f.buf, f.src)]
	}
	f.src, f.own = f.buf, true
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
