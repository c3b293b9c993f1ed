package browser

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Options configure a Browser. The zero value is a headless browser that
// trusts only the system's CAs.
type Options struct {
	// TrustCAFile is a PEM file with a CA certificate to trust, such as
	// the local CA that tlsconf generates (data_dir/tls/ca.crt).
	TrustCAFile string
	// IgnoreCertErrors accepts any certificate. Prefer TrustCAFile:
	// WebAuthn does not work with it, and it hides certificate mistakes.
	IgnoreCertErrors bool
	// Width and Height of the window; zero means 1280 by 800, a laptop.
	Width, Height int
	// Timeout bounds each helper call; zero means 20 seconds.
	Timeout time.Duration
}

// Browser is one Chromium with one tab.
type Browser struct {
	t       testing.TB
	ctx     context.Context
	cancel  context.CancelFunc
	timeout time.Duration

	mu         sync.Mutex
	console    []chromedp.ConsoleMessage
	violations []CSPViolation
	closed     bool
	done       chan struct{} // closed when the console reader has stopped
}

// ChromiumPath finds the browser: $VEILIG_CHROMIUM, else chromium (what
// Debian's package installs) or chromium-browser on PATH.
func ChromiumPath() (string, error) {
	if p := os.Getenv("VEILIG_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no chromium on PATH (install Debian's chromium package: bash .ci/deps.sh)")
}

// New starts a browser for t and registers its end with t.Cleanup. A
// missing Chromium fails the test with the package to install, as every
// missing peer does here: a skipped browser test would hide a regression.
func New(t testing.TB, opts Options) *Browser {
	t.Helper()
	exe, err := ChromiumPath()
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	if opts.Width == 0 {
		opts.Width, opts.Height = 1280, 800
	}
	if opts.Timeout == 0 {
		opts.Timeout = 20 * time.Second
	}
	home := t.TempDir()
	if opts.TrustCAFile != "" {
		if err := trustCA(home, opts.TrustCAFile); err != nil {
			t.Fatalf("browser: %v", err)
		}
	}
	allocOpts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(filepath.Join(home, "profile")),
		chromedp.Env("HOME=" + home),
		chromedp.WindowSize(opts.Width, opts.Height),
		chromedp.NoSandbox, // tests run as root in CI
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("dns-prefetch-disable", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE localhost"),
	}
	if opts.IgnoreCertErrors {
		allocOpts = append(allocOpts, chromedp.IgnoreCertErrors)
	}
	// DefaultExecAllocatorOptions carry headless, no-first-run,
	// disable-background-networking, disable-sync and the other quiet
	// flags; ours come after so they win.
	all := append(chromedp.DefaultExecAllocatorOptions[:], allocOpts...)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), all...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	b := &Browser{t: t, timeout: opts.Timeout, done: make(chan struct{})}
	b.ctx = ctx
	b.cancel = func() { cancel(); acancel() }
	t.Cleanup(b.Close)

	// Start the browser and the tab, then listen before any page loads.
	// The first Do must get the tab's own context: chromedp ties the
	// browser's life to it, so a timeout here would end the browser.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("browser: start %s: %v", exe, err)
	}
	messages := chromedp.Console(ctx)
	go b.readConsole(messages)
	setup, setupCancel := context.WithTimeout(ctx, b.timeout)
	defer setupCancel()
	if err := b.watchCSP(setup); err != nil {
		t.Fatalf("browser: %v", err)
	}
	return b
}

func (b *Browser) readConsole(messages func(func(chromedp.ConsoleMessage, error) bool)) {
	defer close(b.done)
	for m, err := range messages {
		if err != nil {
			return
		}
		b.mu.Lock()
		b.console = append(b.console, m)
		b.mu.Unlock()
	}
}

// Close ends the browser and fails the test if a page reported a CSP
// violation that the test did not take with TakeCSPViolations. It runs
// at cleanup; calling it earlier is allowed, and later calls do nothing.
func (b *Browser) Close() {
	b.t.Helper()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	b.mu.Unlock()
	// Let violations reported by the last page arrive.
	ctx, cancel := context.WithTimeout(b.ctx, 300*time.Millisecond)
	chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`0`))
	cancel()
	b.cancel()
	<-b.done
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, v := range b.violations {
		b.t.Errorf("browser: CSP violation: %s", v)
	}
}

// Context is the chromedp context of the tab, for actions the helpers do
// not cover. It ends when the test does.
func (b *Browser) Context() context.Context { return b.ctx }

// Do runs chromedp actions within the helper timeout and fails the test
// on error.
func (b *Browser) Do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %s: %v%s", what, err, b.consoleTail())
	}
}

// Navigate loads url and waits for it to load.
func (b *Browser) Navigate(url string) {
	b.t.Helper()
	b.Do("navigate to "+url, chromedp.Navigate(url))
}

// Fill replaces the value of the input at the CSS selector sel by typing
// value, so the page sees real input events.
func (b *Browser) Fill(sel, value string) {
	b.t.Helper()
	b.Do("fill "+sel, chromedp.Clear(chromedp.CSS(sel)), chromedp.SendKeys(chromedp.CSS(sel), value))
}

// Click clicks the element at the CSS selector sel, once it is visible.
func (b *Browser) Click(sel string) {
	b.t.Helper()
	b.Do("click "+sel, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)))
}

// WaitVisible waits until the element at sel is visible.
func (b *Browser) WaitVisible(sel string) {
	b.t.Helper()
	b.Do("wait for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
}

// Text returns the visible text of the element at sel.
func (b *Browser) Text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("browser: text of %s: %v%s", sel, err, b.consoleTail())
	}
	return s
}

// WaitText waits until the element at sel shows text (a substring) and
// returns all its text.
func (b *Browser) WaitText(sel, text string) string {
	b.t.Helper()
	deadline := time.Now().Add(b.timeout)
	last := ""
	for {
		ctx, cancel := context.WithTimeout(b.ctx, time.Until(deadline))
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		cancel()
		if err == nil && strings.Contains(s, text) {
			return s
		}
		if err == nil {
			last = s
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("browser: %s never showed %q within %v (last text %q, err %v)%s", sel, text, b.timeout, last, err, b.consoleTail())
		}
		if !sleep(b.ctx, 50*time.Millisecond) {
			b.t.Fatalf("browser: waiting for %q: %v", text, b.ctx.Err())
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Eval evaluates the JavaScript expression js in the page and decodes the
// result into T. A promise is awaited, so Eval[string](b, `fetch(...).
// then(r => r.text())`) works. DevTools evaluation is not subject to the
// page's CSP, so this cannot prove a page's own script runs; use Click.
func Eval[T any](b *Browser, js string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("browser: eval %.60q: %v%s", js, err, b.consoleTail())
	}
	return v
}

// Screenshot saves a PNG of the whole page as name.png in the test's
// artifact directory (see ArtifactDir), logs and returns its path.
func (b *Browser) Screenshot(name string) string {
	b.t.Helper()
	dir := ArtifactDir(b.t)
	path := filepath.Join(dir, name+".png")
	b.ScreenshotTo(path)
	b.t.Logf("browser: screenshot %s", path)
	return path
}

// ScreenshotTo saves a PNG of the whole page at path.
func (b *Browser) ScreenshotTo(path string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("browser: screenshot: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.t.Fatalf("browser: screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatalf("browser: screenshot: %v", err)
	}
}

// ArtifactDir is where a test's screenshots go: E2E_ARTIFACTS/<test
// name> when E2E_ARTIFACTS is set (kept after the run, as the e2e
// harness keeps its logs there), else t.TempDir.
func ArtifactDir(t testing.TB) string {
	t.Helper()
	root := os.Getenv("E2E_ARTIFACTS")
	if root == "" {
		return t.TempDir()
	}
	name := strings.NewReplacer("/", "_", " ", "_", ":", "_").Replace(t.Name())
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("browser: artifact dir: %v", err)
	}
	return dir
}

// ConsoleErrors returns the console errors and uncaught exceptions seen
// so far, including Chromium's own log errors (a failed load, a refused
// script), as "url:line: text".
func (b *Browser) ConsoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, m := range b.console {
		if m.Type == chromedp.ConsoleError || m.IsException() {
			out = append(out, fmt.Sprintf("%s:%d: %s", m.URL, m.Line+1, m.Text))
		}
	}
	return out
}

func (b *Browser) consoleTail() string {
	errs := b.ConsoleErrors()
	if len(errs) == 0 {
		return ""
	}
	if len(errs) > 5 {
		errs = errs[len(errs)-5:]
	}
	return "\nconsole errors:\n  " + strings.Join(errs, "\n  ")
}
