package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

type calls struct{ n int }

func (c calls) Active() (int, int) { return c.n, 2 * c.n }

func get(t *testing.T, srv *httptest.Server, path string) (int, string) {
	t.Helper()
	res, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestProbes: liveness answers whatever the checks say; readiness follows
// every check and names the failing one.
func TestProbes(t *testing.T) {
	var storeDown, listenersDown atomic.Bool
	checks := []Check{
		{"store", func(context.Context) error {
			if storeDown.Load() {
				return errors.New("database is locked")
			}
			return nil
		}},
		{"sip_listeners", func(context.Context) error {
			if listenersDown.Load() {
				return errors.New("not accepting")
			}
			return nil
		}},
	}
	srv := httptest.NewServer(Handler(NewRegistry(Sources{Calls: calls{3}}), checks))
	defer srv.Close()

	if code, body := get(t, srv, "/readyz"); code != 200 || !strings.Contains(body, `"status":"ready"`) {
		t.Fatalf("readyz with every check passing: %d %s", code, body)
	}
	storeDown.Store(true)
	code, body := get(t, srv, "/readyz")
	var h Health
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatalf("readyz body %q: %v", body, err)
	}
	if code != 503 || h.Status != "not_ready" || h.Checks["store"] != "database is locked" || h.Checks["sip_listeners"] != "ok" {
		t.Fatalf("readyz with the store down: %d %+v", code, h)
	}
	listenersDown.Store(true)
	if code, body := get(t, srv, "/healthz"); code != 200 || !strings.Contains(body, `"alive"`) {
		t.Fatalf("healthz must not depend on readiness: %d %s", code, body)
	}
	if code, body := get(t, srv, "/metrics"); code != 200 || !strings.Contains(body, "veilig_calls_active 3") || !strings.Contains(body, "veilig_dialogs_active 6") {
		t.Fatalf("metrics: %d\n%s", code, body)
	}
	res, err := srv.Client().Post(srv.URL+"/readyz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /readyz: %d, want 405", res.StatusCode)
	}
}
