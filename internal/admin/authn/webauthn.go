package authn

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// PasskeyConfig is the relying party: the admin plane's host and origin.
type PasskeyConfig struct {
	// RPID is the admin host name ("pbx.example.net", or "localhost").
	// Passkeys are bound to it: changing it orphans every passkey.
	RPID string
	// Origins are the admin plane's origins ("https://pbx.example.net:8443").
	// Each must be https and its host RPID or a subdomain of it.
	Origins []string
	// DisplayName is what the browser shows ("Veilig"); empty means "Veilig".
	DisplayName string
	// Timeout bounds a ceremony, from Begin to Finish; zero means 5 minutes.
	Timeout time.Duration
}

// Validate checks the config against the WebAuthn rules the browser will
// apply anyway, so a mistake shows at startup and not as a failing login.
func (c PasskeyConfig) Validate() error {
	if c.RPID == "" {
		return errors.New("authn: passkeys: rp id (the admin host name) is empty")
	}
	if net.ParseIP(strings.Trim(c.RPID, "[]")) != nil {
		return fmt.Errorf("authn: passkeys: rp id %q is an IP address; WebAuthn needs a host name", c.RPID)
	}
	if err := protocol.ValidateRPID(c.RPID); err != nil || strings.ContainsAny(c.RPID, ":/") || c.RPID != strings.ToLower(c.RPID) {
		return fmt.Errorf("authn: passkeys: rp id %q is not a lower-case host name without scheme or port", c.RPID)
	}
	if len(c.Origins) == 0 {
		return errors.New("authn: passkeys: no origin (the admin plane's https://host:port)")
	}
	for _, o := range c.Origins {
		u, err := url.Parse(o)
		if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return fmt.Errorf("authn: passkeys: origin %q: want https://host[:port] and nothing more", o)
		}
		h := u.Hostname()
		if h != c.RPID && !strings.HasSuffix(h, "."+c.RPID) {
			return fmt.Errorf("authn: passkeys: origin %q: host is not %s or a subdomain of it", o, c.RPID)
		}
	}
	if c.Timeout < 0 {
		return fmt.Errorf("authn: passkeys: timeout %v is negative", c.Timeout)
	}
	return nil
}

// Passkeys runs WebAuthn ceremonies for admins. Every ceremony requires
// user verification (PIN or biometric on the authenticator), so a passkey
// is both factors at once; registration asks for a discoverable
// credential, so login can start without a user name.
type Passkeys struct {
	wa *webauthn.WebAuthn
}

// NewPasskeys validates c and returns the relying party.
func NewPasskeys(c PasskeyConfig) (*Passkeys, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.DisplayName == "" {
		c.DisplayName = "Veilig"
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Minute
	}
	origins := make([]string, len(c.Origins))
	for i, o := range c.Origins {
		origins[i] = strings.TrimSuffix(o, "/")
	}
	timeout := webauthn.TimeoutConfig{Enforce: true, Timeout: c.Timeout, TimeoutUVD: c.Timeout}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:                  c.RPID,
		RPDisplayName:         c.DisplayName,
		RPOrigins:             origins,
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementRequired,
			UserVerification: protocol.VerificationRequired,
		},
		Timeouts: webauthn.TimeoutsConfig{Login: timeout, Registration: timeout},
	})
	if err != nil {
		return nil, fmt.Errorf("authn: passkeys: %w", err)
	}
	return &Passkeys{wa: wa}, nil
}

// PasskeyUser adapts an admin to what WebAuthn needs. ID is the user
// handle: random, never the name (it is stored on the authenticator and
// handed to any site that asks for discoverable credentials). Credentials
// are the admin's registered passkeys, as stored.
type PasskeyUser struct {
	ID          []byte
	Name        string
	DisplayName string
	Credentials []webauthn.Credential
}

var _ webauthn.User = (*PasskeyUser)(nil)

// WebAuthnID implements webauthn.User.
func (u *PasskeyUser) WebAuthnID() []byte { return u.ID }

// WebAuthnName implements webauthn.User.
func (u *PasskeyUser) WebAuthnName() string { return u.Name }

// WebAuthnDisplayName implements webauthn.User.
func (u *PasskeyUser) WebAuthnDisplayName() string {
	if u.DisplayName == "" {
		return u.Name
	}
	return u.DisplayName
}

// WebAuthnCredentials implements webauthn.User.
func (u *PasskeyUser) WebAuthnCredentials() []webauthn.Credential { return u.Credentials }

// NewUserHandle returns a random 32-byte user handle for PasskeyUser.ID.
func NewUserHandle() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

// Errors of the passkey ceremonies. Finish errors also wrap the
// library's *protocol.Error, whose DevInfo says more for the log.
var (
	// ErrPasskeySession: the stored ceremony state is missing, damaged,
	// for another ceremony or another user, or expired.
	ErrPasskeySession = errors.New("authn: passkey ceremony state invalid")
	// ErrPasskeyRejected: the browser's answer does not verify.
	ErrPasskeyRejected = errors.New("authn: passkey response rejected")
	// ErrPasskeyCloned: the authenticator's signature counter went back,
	// so two copies of the key may exist. Refuse the login and tell the
	// owners; the credential should be revoked.
	ErrPasskeyCloned = errors.New("authn: passkey signature counter went backwards (possible clone)")
)

// ceremony kinds recorded in the session, so state from one kind of
// ceremony cannot complete another.
const (
	ceremonyRegister = "register"
	ceremonyLogin    = "login"
	ceremonyPasskey  = "passkey-login"
)

// passkeySession is what the caller keeps server-side between Begin and
// Finish (in the admin's pending-login row or the session), as JSON.
type passkeySession struct {
	Ceremony string               `json:"ceremony"`
	Data     webauthn.SessionData `json:"data"`
}

func encodeSession(kind string, sd *webauthn.SessionData) ([]byte, error) {
	b, err := json.Marshal(passkeySession{Ceremony: kind, Data: *sd})
	if err != nil {
		return nil, fmt.Errorf("authn: passkey session: %w", err)
	}
	return b, nil
}

func decodeSession(kind string, b []byte) (webauthn.SessionData, error) {
	var s passkeySession
	if err := json.Unmarshal(b, &s); err != nil {
		return webauthn.SessionData{}, fmt.Errorf("%w: %v", ErrPasskeySession, err)
	}
	if s.Ceremony != kind {
		return webauthn.SessionData{}, fmt.Errorf("%w: state is for %q, not %q", ErrPasskeySession, s.Ceremony, kind)
	}
	if s.Data.Challenge == "" || s.Data.Expires.IsZero() {
		return webauthn.SessionData{}, fmt.Errorf("%w: no challenge or expiry", ErrPasskeySession)
	}
	if time.Now().After(s.Data.Expires) {
		return webauthn.SessionData{}, fmt.Errorf("%w: expired at %v", ErrPasskeySession, s.Data.Expires)
	}
	return s.Data, nil
}

func finishError(err error) error {
	return fmt.Errorf("%w: %w", ErrPasskeyRejected, err)
}

func sameUser(sd webauthn.SessionData, u *PasskeyUser) error {
	if !bytes.Equal(sd.UserID, u.ID) {
		return fmt.Errorf("%w: state was begun for another user", ErrPasskeySession)
	}
	return nil
}

// MaxPasskeyResponse bounds the browser's JSON answer.
const MaxPasskeyResponse = 64 << 10

// openFinish checks what a Finish gets before the library sees it: the
// stored state is for this kind of ceremony, unexpired and (when u is
// not nil) begun for u, and the response is of a sane size.
func openFinish(kind string, u *PasskeyUser, session, response []byte) (webauthn.SessionData, error) {
	sd, err := decodeSession(kind, session)
	if err != nil {
		return sd, err
	}
	if u != nil {
		if err := sameUser(sd, u); err != nil {
			return sd, err
		}
	}
	if len(response) == 0 || len(response) > MaxPasskeyResponse {
		return sd, fmt.Errorf("%w: response of %d bytes (want 1..%d)", ErrPasskeyRejected, len(response), MaxPasskeyResponse)
	}
	return sd, nil
}

// begun encodes what a Begin returns: the options for the browser and
// the state to keep.
func begun(kind string, options any, sd *webauthn.SessionData) ([]byte, []byte, error) {
	opts, err := json.Marshal(options)
	if err != nil {
		return nil, nil, fmt.Errorf("authn: begin passkey %s: %w", kind, err)
	}
	session, err := encodeSession(kind, sd)
	if err != nil {
		return nil, nil, err
	}
	return opts, session, nil
}

// BeginRegistration starts adding a passkey for u. options is the JSON
// for the browser ({"publicKey": ...}; PublicKeyCredential.
// parseCreationOptionsFromJSON takes its publicKey member); session is the
// state to keep server-side for FinishRegistration. The user's existing
// passkeys are excluded, so the same authenticator is not added twice.
func (p *Passkeys) BeginRegistration(u *PasskeyUser) (options, session []byte, err error) {
	excl := webauthn.Credentials(u.Credentials).CredentialDescriptors()
	creation, sd, err := p.wa.BeginRegistration(u, webauthn.WithExclusions(excl))
	if err != nil {
		return nil, nil, fmt.Errorf("authn: begin passkey registration for %q: %w", u.Name, err)
	}
	return begun(ceremonyRegister, creation, sd)
}

// FinishRegistration checks the browser's answer (the JSON of
// credential.toJSON()) against session and returns the new credential to
// store for u.
func (p *Passkeys) FinishRegistration(u *PasskeyUser, session, response []byte) (*webauthn.Credential, error) {
	sd, err := openFinish(ceremonyRegister, u, session, response)
	if err != nil {
		return nil, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPasskeyRejected, err)
	}
	cred, err := p.wa.CreateCredential(u, sd, parsed)
	if err != nil {
		return nil, finishError(err)
	}
	return cred, nil
}

// BeginLogin starts a login for u with one of u's passkeys.
func (p *Passkeys) BeginLogin(u *PasskeyUser) (options, session []byte, err error) {
	if len(u.Credentials) == 0 {
		return nil, nil, fmt.Errorf("authn: begin passkey login for %q: no passkey registered", u.Name)
	}
	assertion, sd, err := p.wa.BeginLogin(u)
	if err != nil {
		return nil, nil, fmt.Errorf("authn: begin passkey login for %q: %w", u.Name, err)
	}
	return begun(ceremonyLogin, assertion, sd)
}

// FinishLogin checks the browser's answer against session and u's
// passkeys. It returns the credential used, with its updated signature
// counter and flags, which the caller stores back.
func (p *Passkeys) FinishLogin(u *PasskeyUser, session, response []byte) (*webauthn.Credential, error) {
	sd, err := openFinish(ceremonyLogin, u, session, response)
	if err != nil {
		return nil, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPasskeyRejected, err)
	}
	cred, err := p.wa.ValidateLogin(u, sd, parsed)
	if err != nil {
		return nil, finishError(err)
	}
	if cred.Authenticator.CloneWarning {
		return cred, ErrPasskeyCloned
	}
	return cred, nil
}

// BeginPasskeyLogin starts a login without a user name: the browser
// offers the passkeys it has for this site.
func (p *Passkeys) BeginPasskeyLogin() (options, session []byte, err error) {
	assertion, sd, err := p.wa.BeginDiscoverableLogin()
	if err != nil {
		return nil, nil, fmt.Errorf("authn: begin passkey login: %w", err)
	}
	return begun(ceremonyPasskey, assertion, sd)
}

// FinishPasskeyLogin checks a user-name-less login. lookup finds the
// admin whose user handle the authenticator returned (an error or nil for
// none); the answer is then checked against that admin's passkeys.
func (p *Passkeys) FinishPasskeyLogin(lookup func(userHandle []byte) (*PasskeyUser, error), session, response []byte) (*PasskeyUser, *webauthn.Credential, error) {
	sd, err := openFinish(ceremonyPasskey, nil, session, response)
	if err != nil {
		return nil, nil, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrPasskeyRejected, err)
	}
	var found *PasskeyUser
	handler := func(_, userHandle []byte) (webauthn.User, error) {
		u, err := lookup(userHandle)
		if err != nil {
			return nil, err
		}
		if u == nil {
			return nil, errors.New("no admin has this passkey")
		}
		found = u
		return u, nil
	}
	_, cred, err := p.wa.ValidatePasskeyLogin(handler, sd, parsed)
	if err != nil {
		return nil, nil, finishError(err)
	}
	if cred.Authenticator.CloneWarning {
		return found, cred, ErrPasskeyCloned
	}
	return found, cred, nil
}
