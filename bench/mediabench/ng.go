package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"time"
)

// ngClient speaks rtpengine's ng control protocol: "<cookie> <bencode>" in
// one UDP datagram each way.
type ngClient struct{ c *net.UDPConn }

func dialNG(addr string) (*ngClient, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	c, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		return nil, err
	}
	return &ngClient{c: c}, nil
}

func (n *ngClient) cmd(d map[string]any) (map[string]any, error) {
	var ck [6]byte
	_, _ = rand.Read(ck[:])
	cookie := hex.EncodeToString(ck[:])
	var b bytes.Buffer
	b.WriteString(cookie + " ")
	benc(&b, d)
	buf := make([]byte, 65535)
	for attempt := 0; attempt < 3; attempt++ {
		if _, err := n.c.Write(b.Bytes()); err != nil {
			return nil, err
		}
		deadline := time.Now().Add(3 * time.Second)
		for {
			_ = n.c.SetReadDeadline(deadline)
			k, err := n.c.Read(buf)
			if err != nil {
				break
			}
			ckr, body, ok := bytes.Cut(buf[:k], []byte(" "))
			if !ok || string(ckr) != cookie {
				continue
			}
			v, _, err := bdec(body)
			if err != nil {
				return nil, err
			}
			m, ok := v.(map[string]any)
			if !ok {
				return nil, errors.New("ng: reply is not a dict")
			}
			if m["result"] != "ok" && m["result"] != "pong" {
				return m, fmt.Errorf("ng: %v: %v", m["result"], m["error-reason"])
			}
			return m, nil
		}
	}
	return nil, errors.New("ng: no reply")
}

func benc(b *bytes.Buffer, v any) {
	switch x := v.(type) {
	case int:
		fmt.Fprintf(b, "i%de", x)
	case string:
		fmt.Fprintf(b, "%d:%s", len(x), x)
	case []string:
		b.WriteByte('l')
		for _, s := range x {
			benc(b, s)
		}
		b.WriteByte('e')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteByte('d')
		for _, k := range keys {
			benc(b, k)
			benc(b, x[k])
		}
		b.WriteByte('e')
	default:
		panic(fmt.Sprintf("benc: %T", v)) // programming error in the bench, not input
	}
}

func bdec(b []byte) (any, []byte, error) {
	if len(b) == 0 {
		return nil, nil, errors.New("bdec: short")
	}
	switch b[0] {
	case 'i':
		e := bytes.IndexByte(b, 'e')
		if e < 0 {
			return nil, nil, errors.New("bdec: int")
		}
		n, err := strconv.Atoi(string(b[1:e]))
		return n, b[e+1:], err
	case 'l':
		var out []any
		b = b[1:]
		for len(b) > 0 && b[0] != 'e' {
			v, rest, err := bdec(b)
			if err != nil {
				return nil, nil, err
			}
			out, b = append(out, v), rest
		}
		if len(b) == 0 {
			return nil, nil, errors.New("bdec: list")
		}
		return out, b[1:], nil
	case 'd':
		out := map[string]any{}
		b = b[1:]
		for len(b) > 0 && b[0] != 'e' {
			k, rest, err := bdec(b)
			if err != nil {
				return nil, nil, err
			}
			v, rest2, err := bdec(rest)
			if err != nil {
				return nil, nil, err
			}
			ks, _ := k.(string)
			out[ks], b = v, rest2
		}
		if len(b) == 0 {
			return nil, nil, errors.New("bdec: dict")
		}
		return out, b[1:], nil
	}
	c := bytes.IndexByte(b, ':')
	if c < 0 {
		return nil, nil, errors.New("bdec: string")
	}
	n, err := strconv.Atoi(string(b[:c]))
	if err != nil || n < 0 || c+1+n > len(b) {
		return nil, nil, errors.New("bdec: string length")
	}
	return string(b[c+1 : c+1+n]), b[c+1+n:], nil
}
