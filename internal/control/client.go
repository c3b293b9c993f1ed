package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/veilig/veilig/internal/service"
)

// ErrNotRunning reports that no server answers on the socket.
var ErrNotRunning = errors.New("no server is running")

// Client runs operations in the server listening on a socket.
type Client struct {
	Path string
}

// Running reports whether a server answers at path.
func Running(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Invoke implements service.Caller.
func (cl Client) Invoke(ctx context.Context, name string, req, res any, _ func(*service.Service, service.Actor) error) error {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	c, err := d.DialContext(dctx, "unix", cl.Path)
	cancel()
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%w (%s)", ErrNotRunning, cl.Path)
		}
		if errors.Is(err, os.ErrPermission) {
			return &service.Error{Kind: service.Forbidden, Message: fmt.Sprintf("cannot reach the server at %s: %v (run as the user that runs veilig)", cl.Path, err)}
		}
		return &service.Error{Kind: service.Unavailable, Message: fmt.Sprintf("cannot reach the server at %s: %v", cl.Path, err), Err: err}
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	} else {
		_ = c.SetDeadline(time.Now().Add(10 * time.Minute))
	}
	raw, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode %s request: %w", name, err)
	}
	b, _ := json.Marshal(request{Op: name, Req: raw})
	if _, err := c.Write(append(b, '\n')); err != nil {
		return &service.Error{Kind: service.Unavailable, Message: "send to the server: " + err.Error(), Err: err}
	}
	line, err := readLine(bufio.NewReaderSize(c, 64<<10), maxRequest)
	if err != nil {
		return &service.Error{Kind: service.Unavailable, Message: "no answer from the server: " + err.Error(), Err: err}
	}
	var resp response
	if err := json.Unmarshal(line, &resp); err != nil {
		return &service.Error{Kind: service.Internal, Message: "bad answer from the server: " + err.Error()}
	}
	if resp.Error != nil {
		return resp.Error
	}
	if res != nil && len(resp.Result) > 0 {
		if err := json.Unmarshal(resp.Result, res); err != nil {
			return &service.Error{Kind: service.Internal, Message: "bad answer from the server: " + err.Error()}
		}
	}
	return nil
}
