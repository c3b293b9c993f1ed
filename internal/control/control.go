// Package control is the local transport of the service layer: a unix
// socket in the data directory through which the CLI runs operations in
// the running server, so a change takes effect at once. The socket is
// mode 0600 in a 0700 directory: whoever can connect can read the data
// key anyway, and so acts as an owner. The kernel says who connected
// (SO_PEERCRED), and that, not anything the client claims, is the actor
// the audit log records.
//
// The protocol is one JSON object per line each way: {"op", "req"} in,
// {"result"} or {"error": {code, message, field}} out, one request per
// connection.
package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/veilig/veilig/internal/service"
)

// maxRequest bounds one request line (an import of many extensions is
// the largest).
const maxRequest = 64 << 20

type request struct {
	Op  string          `json:"op"`
	Req json.RawMessage `json:"req,omitempty"`
}

type response struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  *service.Error  `json:"error,omitempty"`
}

// Serve answers on a unix socket at path until ctx ends.
func Serve(ctx context.Context, path string, s *service.Service, log *slog.Logger) error {
	if err := privateDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	go func() { <-ctx.Done(); _ = ln.Close() }()
	defer os.Remove(path)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			log.Warn("control socket accept", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go serveConn(ctx, c.(*net.UnixConn), s, log)
	}
}

func serveConn(ctx context.Context, c *net.UnixConn, s *service.Service, log *slog.Logger) {
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	actor, err := peerActor(c)
	var res response
	if err != nil {
		res.Error = &service.Error{Kind: service.Forbidden, Message: "control socket: " + err.Error()}
		writeResponse(c, res)
		return
	}
	r := bufio.NewReaderSize(c, 64<<10)
	line, err := readLine(r, maxRequest)
	if err != nil {
		res.Error = &service.Error{Kind: service.Invalid, Message: "control socket: " + err.Error()}
		writeResponse(c, res)
		return
	}
	var req request
	if err := json.Unmarshal(line, &req); err != nil {
		res.Error = &service.Error{Kind: service.Invalid, Message: "control socket: bad request: " + err.Error()}
		writeResponse(c, res)
		return
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Minute))
	out, err := s.Dispatch(ctx, actor, req.Op, req.Req)
	if err != nil {
		var se *service.Error
		if !errors.As(err, &se) {
			se = &service.Error{Kind: service.Internal, Message: err.Error()}
		}
		if se.Kind == service.Internal || se.Kind == service.Unavailable {
			log.Error("control operation failed", "op", req.Op, "actor", actor.Name, "err", err)
		}
		res.Error = se
	} else if res.Result, err = json.Marshal(out); err != nil {
		res.Error = &service.Error{Kind: service.Internal, Message: "encode result: " + err.Error()}
	}
	writeResponse(c, res)
}

func writeResponse(c net.Conn, res response) {
	b, _ := json.Marshal(res)
	_, _ = c.Write(append(b, '\n'))
}

func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, isPrefix, err := r.ReadLine()
		if err != nil {
			return nil, err
		}
		line = append(line, chunk...)
		if len(line) > max {
			return nil, fmt.Errorf("request larger than %d bytes", max)
		}
		if !isPrefix {
			return line, nil
		}
	}
}

// peerActor names the connecting process's user, from the kernel.
func peerActor(c *net.UnixConn) (service.Actor, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return service.Actor{}, err
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return service.Actor{}, err
	}
	if credErr != nil {
		return service.Actor{}, fmt.Errorf("peer credentials: %w", credErr)
	}
	uid := strconv.FormatUint(uint64(cred.Uid), 10)
	name := "uid " + uid
	if u, err := user.LookupId(uid); err == nil {
		name = u.Username
	}
	return service.Actor{Name: name, Role: service.RoleOwner, Channel: service.CLI, Source: "unix:uid=" + uid}, nil
}

// privateDir makes sure dir exists, is a real directory (not a link),
// belongs to this process's user and is closed to others: the socket's
// own mode is set only after it is bound, and a directory someone else
// prepared (in the temporary directory) could hand the socket to them.
func privateDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	case !ok || int(st.Uid) != os.Getuid():
		return fmt.Errorf("%s belongs to another user", dir)
	case fi.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("%s is open to other users (mode %o); it must be 0700", dir, fi.Mode().Perm())
	}
	return nil
}
