package sipedge

import (
	"bufio"
	"bytes"
	"net"
	"sync"

	"github.com/emiago/sipgo/sip"
)

// newWriter takes a write buffer for c from the pool; streamConn gives it
// back once flushed.
func newWriter(c net.Conn) *bufio.Writer {
	w := writerPool.Get().(*bufio.Writer)
	w.Reset(c)
	return w
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// encode renders a message into a fresh byte slice the caller owns (kept
// for retransmission).
func encode(m sip.Message) []byte {
	b := bufPool.Get().(*bytes.Buffer)
	b.Reset()
	m.StringWrite(b)
	out := append([]byte(nil), b.Bytes()...)
	bufPool.Put(b)
	return out
}

// send renders and writes a message without keeping the bytes.
func send(c Conn, m sip.Message) error {
	b := bufPool.Get().(*bytes.Buffer)
	b.Reset()
	m.StringWrite(b)
	err := c.Send(b.Bytes())
	bufPool.Put(b)
	return err
}
