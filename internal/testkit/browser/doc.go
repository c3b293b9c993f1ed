// Package browser drives a real headless Chromium (Debian's chromium
// package) from tests with chromedp: navigate, fill, click, wait for
// text, evaluate JavaScript, take screenshots, read the console, catch
// Content-Security-Policy violations and run WebAuthn ceremonies against
// Chromium's virtual authenticator.
//
// Each Browser is a fresh Chromium process with a fresh profile, ended by
// the test's cleanup. Any CSP violation a page reports fails the test,
// because the admin panel's CSP forbids inline script and a violation
// means a page is broken for real users, or an injection got through.
//
// # Certificates
//
// Chromium cannot be handed a CA file on the command line. Options.
// TrustCAFile instead puts the CA into an NSS database in the profile's
// own HOME ($HOME/.pki/nssdb, which Chromium on Linux reads), made with
// certutil from Debian's libnss3-tools. The browser then trusts exactly
// that CA, like a real admin who imported Veilig's local CA, and pages
// are secure contexts without certificate errors, which WebAuthn needs:
// Chromium refuses passkeys on a page with a certificate error.
// Options.IgnoreCertErrors (--ignore-certificate-errors) exists for a
// test that cannot do that and is off unless asked for.
//
// # Network
//
// The browser is started so it talks to nothing but the test's servers:
// no background networking, component updates, sync or QUIC, and a host
// resolver that resolves no name except localhost (IP literals such as
// 127.0.0.2 need no resolver).
package browser
