package browser

import (
	"context"
	"fmt"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// CSPViolation is one securitypolicyviolation event a page fired.
type CSPViolation struct {
	Directive   string `json:"directive"` // the effective directive, such as script-src-elem
	BlockedURI  string `json:"blocked"`   // "inline", "eval" or a URL
	DocumentURI string `json:"document"`
	SourceFile  string `json:"source"`
	Line        int    `json:"line"`
	Sample      string `json:"sample"`      // the start of the blocked code, when the policy asks for samples
	Disposition string `json:"disposition"` // "enforce" or "report"
}

func (v CSPViolation) String() string {
	return fmt.Sprintf("%s blocked %q in %s (%s:%d) %q", v.Directive, v.BlockedURI, v.DocumentURI, v.SourceFile, v.Line, v.Sample)
}

// cspBinding is the name of the Go function exposed to pages.
const cspBinding = "__veiligCSPViolation"

// cspListener runs in every document before the page's own scripts.
// DevTools-injected scripts are exempt from the page's CSP, so this works
// under the strictest policy. It listens in the capture phase, so a page
// cannot stop the event from reaching it.
const cspListener = `document.addEventListener('securitypolicyviolation', (e) => {
  window.` + cspBinding + `({directive: e.effectiveDirective || e.violatedDirective, blocked: e.blockedURI,
    document: e.documentURI, source: e.sourceFile, line: e.lineNumber, sample: e.sample, disposition: e.disposition});
}, true);`

func (b *Browser) watchCSP(ctx context.Context) error {
	report := func(_ context.Context, v CSPViolation) (chromedp.Void, error) {
		b.mu.Lock()
		b.violations = append(b.violations, v)
		b.mu.Unlock()
		return chromedp.Void{}, nil
	}
	err := chromedp.Do(ctx,
		chromedp.ExposeFunc(cspBinding, report),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspListener})
			return err
		}),
	)
	if err != nil {
		return fmt.Errorf("install the CSP listener: %w", err)
	}
	return nil
}

// CSPViolations returns the violations reported so far, leaving them to
// fail the test at cleanup.
func (b *Browser) CSPViolations() []CSPViolation {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]CSPViolation(nil), b.violations...)
}

// TakeCSPViolations returns the violations reported so far and forgets
// them, for a test that provokes one on purpose and checks it.
func (b *Browser) TakeCSPViolations() []CSPViolation {
	b.mu.Lock()
	defer b.mu.Unlock()
	v := b.violations
	b.violations = nil
	return v
}

// WaitCSPViolation waits until at least one violation was reported and
// takes them all. The event fires asynchronously after the load.
func (b *Browser) WaitCSPViolation() []CSPViolation {
	b.t.Helper()
	deadline := time.Now().Add(b.timeout)
	for {
		if v := b.TakeCSPViolations(); len(v) > 0 {
			return v
		}
		if time.Now().After(deadline) || !sleep(b.ctx, 50*time.Millisecond) {
			b.t.Fatalf("browser: no CSP violation reported within %v", b.timeout)
		}
	}
}
