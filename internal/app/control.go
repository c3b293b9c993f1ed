package app

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/veilig/veilig/internal/policy"
)

// ControlRequest is one query on the control socket.
type ControlRequest struct {
	Op      string `json:"op"` // "why", "lift", "regs"
	Addr    string `json:"addr,omitempty"`
	Account string `json:"account,omitempty"`
}

// ControlResponse answers a ControlRequest.
type ControlResponse struct {
	Error    string           `json:"error,omitempty"`
	Reasons  []policy.Reason  `json:"reasons,omitempty"`
	Bindings []ControlBinding `json:"bindings,omitempty"`
}

// ControlBinding is a registration as the running server sees it:
// Connected is false for a TLS/TCP device whose connection is gone (it
// cannot be called until it registers again).
type ControlBinding struct {
	Extension string `json:"extension"`
	Contact   string `json:"contact"`
	Connected bool   `json:"connected"`
}

// serveControl answers local management queries that need the running
// server's memory (rate-limit state, live bans) on a unix socket only the
// data directory's owner can reach.
func serveControl(ctx context.Context, path string, g *guard, lift func(ext string), regs func() []ControlBinding, log *slog.Logger) error {
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		log.Warn("control socket unavailable; `veilig why` will read the store only", "path", path, "err", err)
		return nil
	}
	_ = os.Chmod(path, 0o600)
	go func() { <-ctx.Done(); _ = ln.Close() }()
	defer os.Remove(path)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			continue
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			var req ControlRequest
			line, err := bufio.NewReader(c).ReadBytes('\n')
			if err == nil {
				err = json.Unmarshal(line, &req)
			}
			var res ControlResponse
			switch {
			case err != nil:
				res.Error = "bad request: " + err.Error()
			case req.Op == "why":
				addr, perr := netip.ParseAddr(req.Addr)
				if perr != nil && req.Addr != "" {
					res.Error = fmt.Sprintf("%q is not an IP address", req.Addr)
					break
				}
				res.Reasons = g.eng.Explain(addr.Unmap(), req.Account, time.Now())
			case req.Op == "lift":
				lift(req.Account)
			case req.Op == "regs":
				res.Bindings = regs()
			default:
				res.Error = "unknown op " + req.Op
			}
			_ = json.NewEncoder(c).Encode(res)
		}()
	}
}

// AskControl sends one query to a running server's control socket.
func AskControl(path string, req ControlRequest) (ControlResponse, error) {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return ControlResponse{}, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	b, _ := json.Marshal(req)
	if _, err := c.Write(append(b, '\n')); err != nil {
		return ControlResponse{}, err
	}
	var res ControlResponse
	if err := json.NewDecoder(c).Decode(&res); err != nil {
		return ControlResponse{}, err
	}
	if res.Error != "" {
		return res, errors.New(res.Error)
	}
	return res, nil
}
