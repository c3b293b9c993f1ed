package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"

	"github.com/veilig/veilig/internal/media"
)

// ctlReq and ctlResp are the bench's control protocol for the Veilig relay:
// one JSON object per line over TCP, shaped like rtpengine's ng offer/answer
// so that both relays are driven the same way. The lead replaces this with
// the SIP path later.
type ctlReq struct {
	Op   string `json:"op"` // offer, answer, delete, stats, ping
	Call string `json:"call,omitempty"`
	SDP  string `json:"sdp,omitempty"`
}

type ctlResp struct {
	OK       bool   `json:"ok"`
	Err      string `json:"err,omitempty"`
	SDP      string `json:"sdp,omitempty"`
	Sessions int    `json:"sessions,omitempty"`
	HeapB    uint64 `json:"heap_bytes,omitempty"`
	Dropped  uint64 `json:"dropped_unauth,omitempty"`
}

func relayMain(args []string) error {
	fs := flag.NewFlagSet("relay", flag.ExitOnError)
	ctl := fs.String("listen-ctl", "127.0.0.1:22223", "control listen address")
	addr := fs.String("address", "127.0.0.1", "media address")
	pmin := fs.Int("port-min", 12000, "lowest media port")
	pmax := fs.Int("port-max", 21999, "highest media port")
	_ = fs.Parse(args)

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	r, err := media.New(media.Options{Address: netip.MustParseAddr(*addr), PortMin: *pmin, PortMax: *pmax,
		Timeout: -1, Logger: log})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", *ctl)
	if err != nil {
		return fmt.Errorf("control listen: %w", err)
	}
	go func() { <-ctx.Done(); ln.Close() }()
	var mu sync.Mutex
	calls := map[string]*media.Session{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serveCtl(c, r, &mu, calls)
		}
	}()
	fmt.Fprintf(os.Stderr, "relay ready ctl=%s workers=%d\n", *ctl, r.Stats().Workers)
	return r.Run(ctx)
}

func serveCtl(c net.Conn, r *media.Relay, mu *sync.Mutex, calls map[string]*media.Session) {
	defer c.Close()
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	enc := json.NewEncoder(c)
	for sc.Scan() {
		var q ctlReq
		resp := ctlResp{OK: true}
		if err := json.Unmarshal(sc.Bytes(), &q); err != nil {
			resp = ctlResp{Err: err.Error()}
		} else if err := handleCtl(q, r, mu, calls, &resp); err != nil {
			resp = ctlResp{Err: err.Error()}
		}
		if err := enc.Encode(resp); err != nil {
			return
		}
	}
}

func handleCtl(q ctlReq, r *media.Relay, mu *sync.Mutex, calls map[string]*media.Session, resp *ctlResp) error {
	mu.Lock()
	s := calls[q.Call]
	mu.Unlock()
	switch q.Op {
	case "ping":
		return nil
	case "offer":
		if s == nil {
			var err error
			if s, err = r.NewSession(q.Call); err != nil {
				return err
			}
			mu.Lock()
			calls[q.Call] = s
			mu.Unlock()
		}
		out, err := s.RewriteOffer(media.LegA, []byte(q.SDP), nil)
		resp.SDP = string(out)
		return err
	case "answer":
		if s == nil {
			return errors.New("no such call")
		}
		out, err := s.RewriteAnswer(media.LegB, []byte(q.SDP))
		resp.SDP = string(out)
		return err
	case "delete":
		if s != nil {
			st := s.Stats()
			resp.Dropped = st.A.DroppedUnauthenticated + st.B.DroppedUnauthenticated
			s.Close()
			mu.Lock()
			delete(calls, q.Call)
			mu.Unlock()
		}
		return nil
	case "stats":
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		resp.Sessions, resp.HeapB = r.Stats().Sessions, ms.HeapInuse
		return nil
	}
	return fmt.Errorf("unknown op %q", q.Op)
}
