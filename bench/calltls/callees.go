package main

// The callees: one device per subscriber, each on its own TLS connection
// to the server, registered with that connection's own address as Contact,
// answering on that connection what the server sends it. This is what a
// phone behind NAT does; a server can reach it only over the connection it
// registered on (Veilig never dials devices; Kamailio reuses the
// connection whose remote address is the Contact's).
//
// Per call each callee does what the shared harness's call_uas.xml does:
// INVITE -> 180 -> 200 (SDP: RTP/SAVP with one SDES key) -> ACK; BYE -> 200.

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/veilig/veilig/internal/testkit/sipua"
)

// calleeSuite is the suite the caller offers (call_uac.xml) and the callee
// answers, as call_uas.xml does.
const calleeSuite = "AES_CM_128_HMAC_SHA1_80"

// The callee's fixed test key, the one call_uas.xml answers with.
const calleeKey = "inline:Nrz4ZEz8ARNyvWZQ2SOF6kKuUeMcOWxWmcgKAC9o"

// calleeMediaPort is the (unused) port of the callee's answer: no media
// flows in this measurement, as in the shared harness.
const calleeMediaPort = 17000

type callees struct {
	uas   []*sipua.UA
	stats sipua.Stats

	invites, answered, refused, byes atomic.Int64
}

// startCallees connects and registers one callee per subscriber, with at
// most workers registrations in flight.
func startCallees(ctx context.Context, addr string, tc *tls.Config, domain string, subs []subscriber,
	workers int, timeout time.Duration) (*callees, error) {
	c := &callees{uas: make([]*sipua.UA, len(subs))}
	next := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				u, err := sipua.Dial(sipua.Config{Addr: addr, TLS: tc, User: subs[i].user, Secret: subs[i].password,
					Domain: domain, Agent: "veilig-bench-callee", Stats: &c.stats})
				if err == nil {
					u.OnInvite = c.answer
					u.OnEnd = func(u *sipua.UA, d *sipua.Dialog) { c.byes.Add(1); u.DropDialog(d.CallID) }
					u.Start()
					c.uas[i] = u
					err = u.Register(3600, timeout)
				}
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					cancel()
					return
				}
			}
		}()
	}
feed:
	for i := range subs {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		c.close()
		return nil, fmt.Errorf("registering the callees: %w", err)
	default:
	}
	if err := ctx.Err(); err != nil {
		c.close()
		return nil, fmt.Errorf("registering the callees: %w", err)
	}
	c.stats.Take()
	return c, nil
}

func (c *callees) close() {
	for _, u := range c.uas {
		if u != nil {
			u.Close()
		}
	}
}

// alive counts the callees whose connection is still open.
func (c *callees) alive() int {
	n := 0
	for _, u := range c.uas {
		if u == nil {
			continue
		}
		select {
		case <-u.Closed():
		default:
			n++
		}
	}
	return n
}

// answer is the callee's side of a new INVITE.
func (c *callees) answer(u *sipua.UA, m *sipua.Msg) {
	c.invites.Add(1)
	tag := sipua.RandHex(6)
	cryptoTag, ok := offeredTag(string(m.Body), calleeSuite)
	if !ok {
		c.refused.Add(1)
		_ = u.Send(u.Response(m, 488, "Not Acceptable Here", tag, nil, ""))
		return
	}
	contact := []string{"Contact: " + u.Contact()}
	_ = u.Send(u.Response(m, 180, "Ringing", tag, contact, ""))
	sdp := answerSDP(cryptoTag)
	d := sipua.NewDialog(m.Get("call-id"), tag, sdp)
	d.Res200 = u.Response(m, 200, "OK", tag, contact, sdp)
	u.AddDialog(d)
	c.answered.Add(1)
	_ = u.Send(d.Res200)
}

// offeredTag returns the tag of the first a=crypto line of the offer with
// the given suite (RFC 4568: the answer names the tag it accepts).
func offeredTag(sdp, suite string) (string, bool) {
	for _, l := range strings.Split(sdp, "\n") {
		l = strings.TrimSpace(l)
		rest, ok := strings.CutPrefix(l, "a=crypto:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) >= 3 && f[1] == suite {
			return f[0], true
		}
	}
	return "", false
}

// answerSDP is call_uas.xml's answer, with the accepted crypto tag.
func answerSDP(cryptoTag string) string {
	return fmt.Sprintf("v=0\r\no=- 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=crypto:%s %s %s\r\n",
		calleeMediaPort, cryptoTag, calleeSuite, calleeKey)
}

// take returns the counters since the last call and resets them.
func (c *callees) take() string {
	s := fmt.Sprintf("INVITE %d, answered %d, refused %d, BYE %d; %s",
		c.invites.Swap(0), c.answered.Swap(0), c.refused.Swap(0), c.byes.Swap(0), c.stats.Take())
	return s
}
