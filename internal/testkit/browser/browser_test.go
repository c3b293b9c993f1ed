package browser_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/veilig/veilig/internal/admin/authn"
	"github.com/veilig/veilig/internal/testkit/browser"
	"github.com/veilig/veilig/internal/tlsconf"
)

// strictCSP is the kind of policy the admin panel sends: nothing inline,
// scripts and styles only from the server itself.
const strictCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// site is the self-test's HTTPS server: a page, its script, a page with
// an inline script, and a relying party for one user made with the
// admin plane's passkey wrapper.
type site struct {
	URL    string // https://localhost:port
	CAFile string

	mu      sync.Mutex
	pk      *authn.Passkeys
	user    *authn.PasskeyUser
	pending map[string][]byte // ceremony kind -> stored session state
}

func newSite(t *testing.T) *site {
	t.Helper()
	m, err := tlsconf.New(tlsconf.Options{Dir: t.TempDir(), Domain: "veilig.test", Hosts: []string{"localhost"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &site{CAFile: m.CAFile(), pending: map[string][]byte{},
		user: &authn.PasskeyUser{ID: authn.NewUserHandle(), Name: "anna", DisplayName: "Anna Admin"}}
	srv := httptest.NewUnstartedServer(s.routes(t))
	srv.TLS = m.ServerConfig()
	// The untrusted-certificate test makes handshakes fail on purpose.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	s.URL = strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	s.pk, err = authn.NewPasskeys(authn.PasskeyConfig{RPID: "localhost", Origins: []string{s.URL}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *site) routes(t *testing.T) http.Handler {
	mux := http.NewServeMux()
	file := func(name, ctype string) http.HandlerFunc {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Security-Policy", strictCSP)
			w.Header().Set("Content-Type", ctype)
			w.Write(b)
		}
	}
	mux.Handle("GET /{$}", file("index.html", "text/html; charset=utf-8"))
	mux.Handle("GET /inline", file("inline.html", "text/html; charset=utf-8"))
	mux.Handle("GET /app.js", file("app.js", "text/javascript"))
	mux.Handle("GET /style.css", file("style.css", "text/css"))
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("POST /passkey/{kind}/{step}", s.passkey)
	return mux
}

func (s *site) passkey(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kind, step := r.PathValue("kind"), r.PathValue("step")
	body, err := io.ReadAll(io.LimitReader(r.Body, authn.MaxPasskeyResponse+1))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var (
		options []byte
		cred    *webauthn.Credential
	)
	switch step {
	case "begin":
		var session []byte
		switch kind {
		case "register":
			options, session, err = s.pk.BeginRegistration(s.user)
		case "login":
			options, session, err = s.pk.BeginLogin(s.user)
		case "discover":
			options, session, err = s.pk.BeginPasskeyLogin()
		default:
			http.NotFound(w, r)
			return
		}
		if err == nil {
			s.pending[kind] = session
			w.Header().Set("Content-Type", "application/json")
			w.Write(options)
			return
		}
	case "finish":
		session := s.pending[kind]
		delete(s.pending, kind) // each ceremony state is used once
		switch kind {
		case "register":
			if cred, err = s.pk.FinishRegistration(s.user, session, body); err == nil {
				s.user.Credentials = append(s.user.Credentials, *cred)
			}
		case "login":
			cred, err = s.pk.FinishLogin(s.user, session, body)
		case "discover":
			var u *authn.PasskeyUser
			u, cred, err = s.pk.FinishPasskeyLogin(func(handle []byte) (*authn.PasskeyUser, error) {
				if bytes.Equal(handle, s.user.ID) {
					return s.user, nil
				}
				return nil, fmt.Errorf("unknown user handle")
			}, session, body)
			if err == nil && u != s.user {
				err = fmt.Errorf("passkey login found %v, want anna", u)
			}
		}
		if err == nil {
			for i := range s.user.Credentials {
				if bytes.Equal(s.user.Credentials[i].ID, cred.ID) {
					s.user.Credentials[i] = *cred // the new sign count and flags
				}
			}
			json.NewEncoder(w).Encode(map[string]any{"name": s.user.Name, "signCount": cred.Authenticator.SignCount, "uv": cred.Flags.UserVerified})
			return
		}
	}
	http.Error(w, err.Error(), http.StatusBadRequest)
}

func TestBrowserRendersClicksAndScreenshots(t *testing.T) {
	s := newSite(t)
	b := browser.New(t, browser.Options{TrustCAFile: s.CAFile})
	b.Navigate(s.URL + "/")
	if got := b.Text("#msg"); got != "Nobody greeted yet." {
		t.Errorf("#msg = %q before the click", got)
	}
	b.Fill("#name", "Anna")
	b.Click("#greet")
	b.WaitText("#msg", "Hello, Anna!")
	if title := browser.Eval[string](b, `document.title`); title != "Veilig browser self-test" {
		t.Errorf("title = %q", title)
	}
	if secure := browser.Eval[bool](b, `window.isSecureContext`); !secure {
		t.Error("page over https://localhost with the trusted CA is not a secure context")
	}

	path := b.Screenshot("self-test-page")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("screenshot %s is not a PNG: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() < 640 || b.Dy() < 400 {
		t.Errorf("screenshot is %v, want at least the 1280x800 window", b)
	}
	if n := colours(img); n < 8 {
		t.Errorf("screenshot has %d colours: the page did not render", n)
	}
	if errs := b.ConsoleErrors(); len(errs) > 0 {
		t.Errorf("console errors: %v", errs)
	}
}

// colours counts the distinct colours in img, up to 1000.
func colours(img image.Image) int {
	seen := map[[4]uint32]bool{}
	bd := img.Bounds()
	for y := bd.Min.Y; y < bd.Max.Y; y += 3 {
		for x := bd.Min.X; x < bd.Max.X; x += 3 {
			r, g, b, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, b, a}] = true
			if len(seen) >= 1000 {
				return len(seen)
			}
		}
	}
	return len(seen)
}

func TestBrowserDetectsCSPViolation(t *testing.T) {
	s := newSite(t)
	b := browser.New(t, browser.Options{TrustCAFile: s.CAFile})
	b.Navigate(s.URL + "/")
	b.Click("#greet")
	b.WaitText("#msg", "Hello, !")
	if v := b.CSPViolations(); len(v) != 0 {
		t.Fatalf("the strict page reported violations: %v", v)
	}

	b.Navigate(s.URL + "/inline")
	v := b.WaitCSPViolation()
	if len(v) != 1 || v[0].BlockedURI != "inline" || !strings.HasPrefix(v[0].Directive, "script-src") || v[0].Disposition != "enforce" ||
		!strings.HasSuffix(v[0].DocumentURI, "/inline") {
		t.Errorf("violations = %+v, want one enforced script-src block of an inline script on /inline", v)
	}
	if title := browser.Eval[string](b, `document.title`); title != "untouched" {
		t.Errorf("title = %q: the inline script ran", title)
	}
}

// spyTB records errors instead of failing, so a test can check that the
// harness fails a test that had a CSP violation.
type spyTB struct {
	testing.TB
	mu     sync.Mutex
	errors []string
}

func (s *spyTB) Errorf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errors = append(s.errors, fmt.Sprintf(format, args...))
}

func TestBrowserFailsTestOnCSPViolation(t *testing.T) {
	s := newSite(t)
	spy := &spyTB{TB: t}
	b := browser.New(spy, browser.Options{TrustCAFile: s.CAFile})
	b.Navigate(s.URL + "/inline")
	b.Close() // what cleanup does, now, so the outcome can be checked
	if len(spy.errors) != 1 || !strings.Contains(spy.errors[0], "CSP violation") || !strings.Contains(spy.errors[0], "inline") {
		t.Errorf("errors reported at close = %q, want one CSP violation", spy.errors)
	}
}

func TestBrowserRefusesUntrustedCertificate(t *testing.T) {
	s := newSite(t)
	b := browser.New(t, browser.Options{}) // the test CA is not trusted
	err := chromedp.Do(b.Context(), chromedp.Navigate(s.URL+"/"))
	if err == nil || !strings.Contains(err.Error(), "ERR_CERT_AUTHORITY_INVALID") {
		t.Errorf("navigating to a server of an untrusted CA: err = %v, want ERR_CERT_AUTHORITY_INVALID", err)
	}
}

func TestBrowserPasskeyCeremony(t *testing.T) {
	s := newSite(t)
	b := browser.New(t, browser.Options{TrustCAFile: s.CAFile})
	auth := b.AddVirtualAuthenticator()
	b.Navigate(s.URL + "/")

	b.Click("#register")
	b.WaitText("#status", "registered anna")
	creds := b.Credentials(auth)
	if len(creds) != 1 {
		t.Fatalf("authenticator holds %d credentials, want 1", len(creds))
	}
	c := creds[0]
	if !c.IsResidentCredential || c.RpID != "localhost" || !bytes.Equal(c.UserHandle, s.user.ID) {
		t.Errorf("credential: resident %v rp %q handle %x; want a passkey for localhost and anna's handle %x",
			c.IsResidentCredential, c.RpID, c.UserHandle, s.user.ID)
	}
	s.mu.Lock()
	stored := s.user.Credentials
	s.mu.Unlock()
	if len(stored) != 1 || !bytes.Equal(stored[0].ID, c.CredentialID) || !stored[0].Flags.UserVerified {
		t.Fatalf("server stored %d credentials (%+v), want the authenticator's one, user-verified", len(stored), stored)
	}

	b.Click("#login")
	loginCount := signCount(t, b.WaitText("#status", "login ok anna"))
	b.Click("#discover")
	discoverCount := signCount(t, b.WaitText("#status", "discover ok anna"))
	if discoverCount <= loginCount {
		t.Errorf("signature counter %d after %d: the stored credential was not updated", discoverCount, loginCount)
	}
	b.Screenshot("passkey-done")

	// Finishing with no ceremony pending (its state is used once) is
	// refused by the wrapper.
	replay := browser.Eval[int](b, `fetch('/passkey/login/finish', {method: 'POST', body: '{}'}).then(r => r.status)`)
	if replay != http.StatusBadRequest {
		t.Errorf("finish with no ceremony pending: HTTP %d, want 400", replay)
	}
	if errs := b.ConsoleErrors(); len(errs) > 1 { // the 400 above is logged
		t.Errorf("console errors: %v", errs)
	}

	// User verification is required: an authenticator whose fingerprint
	// check fails cannot log in.
	b.SetUserVerified(auth, false)
	b.Click("#login")
	b.WaitText("#status", "error: NotAllowedError")
	b.SetUserVerified(auth, true)
}

func signCount(t *testing.T, status string) int {
	t.Helper()
	var n int
	i := strings.LastIndex(status, "count ")
	if i < 0 {
		t.Fatalf("status %q has no count", status)
	}
	if _, err := fmt.Sscanf(status[i:], "count %d", &n); err != nil {
		t.Fatalf("status %q: %v", status, err)
	}
	return n
}
