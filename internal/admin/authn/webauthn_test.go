package authn

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
)

func testPasskeys(t *testing.T) *Passkeys {
	t.Helper()
	p, err := NewPasskeys(PasskeyConfig{RPID: "pbx.example.net", Origins: []string{"https://pbx.example.net:8443"}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPasskeyConfigValidate(t *testing.T) {
	good := []PasskeyConfig{
		{RPID: "localhost", Origins: []string{"https://localhost:8443"}},
		{RPID: "example.net", Origins: []string{"https://pbx.example.net", "https://example.net:8443/"}},
	}
	for _, c := range good {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	bad := map[string]PasskeyConfig{
		"no rp id":         {Origins: []string{"https://localhost"}},
		"ip rp id":         {RPID: "127.0.0.1", Origins: []string{"https://127.0.0.1:8443"}},
		"ipv6 rp id":       {RPID: "[::1]", Origins: []string{"https://[::1]:8443"}},
		"rp id with port":  {RPID: "localhost:8443", Origins: []string{"https://localhost:8443"}},
		"rp id with https": {RPID: "https://localhost", Origins: []string{"https://localhost"}},
		"upper case":       {RPID: "PBX.example.net", Origins: []string{"https://pbx.example.net"}},
		"no origin":        {RPID: "localhost"},
		"http origin":      {RPID: "localhost", Origins: []string{"http://localhost:8443"}},
		"other host":       {RPID: "pbx.example.net", Origins: []string{"https://evil.example.net"}},
		"suffix trick":     {RPID: "example.net", Origins: []string{"https://notexample.net"}},
		"path":             {RPID: "localhost", Origins: []string{"https://localhost/admin"}},
		"query":            {RPID: "localhost", Origins: []string{"https://localhost?x=1"}},
		"userinfo":         {RPID: "localhost", Origins: []string{"https://a@localhost"}},
		"negative timeout": {RPID: "localhost", Origins: []string{"https://localhost"}, Timeout: -time.Second},
	}
	for name, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: %+v accepted", name, c)
		}
		if _, err := NewPasskeys(c); err == nil {
			t.Errorf("%s: NewPasskeys accepted", name)
		}
	}
}

func TestPasskeyBeginRegistrationOptions(t *testing.T) {
	p := testPasskeys(t)
	u := &PasskeyUser{ID: NewUserHandle(), Name: "anna", DisplayName: "Anna Admin"}
	opts, session, err := p.BeginRegistration(u)
	if err != nil {
		t.Fatal(err)
	}
	var o struct {
		PublicKey struct {
			RP        struct{ ID, Name string }
			User      struct{ ID, Name, DisplayName string }
			Challenge string
			Timeout   int
			Selection struct {
				ResidentKey      string `json:"residentKey"`
				UserVerification string `json:"userVerification"`
			} `json:"authenticatorSelection"`
			Attestation string
		}
	}
	if err := json.Unmarshal(opts, &o); err != nil {
		t.Fatalf("options JSON: %v\n%s", err, opts)
	}
	pk := o.PublicKey
	if pk.RP.ID != "pbx.example.net" || pk.RP.Name != "Veilig" || pk.User.Name != "anna" || pk.User.DisplayName != "Anna Admin" {
		t.Errorf("rp/user = %+v %+v", pk.RP, pk.User)
	}
	if pk.Selection.ResidentKey != "required" || pk.Selection.UserVerification != "required" {
		t.Errorf("authenticator selection %+v: want resident key and user verification required", pk.Selection)
	}
	if pk.Timeout != 300000 || len(pk.Challenge) < 22 || pk.Attestation != "none" {
		t.Errorf("timeout %d challenge %q attestation %q", pk.Timeout, pk.Challenge, pk.Attestation)
	}
	if pk.User.ID != base64.RawURLEncoding.EncodeToString(u.ID) {
		t.Errorf("user.id %q is not the random user handle", pk.User.ID)
	}
	if !json.Valid(session) {
		t.Errorf("session is not JSON: %s", session)
	}
	if _, _, err := p.BeginLogin(u); err == nil {
		t.Error("BeginLogin for a user without passkeys succeeded")
	}
}

// A registration response of the right shape (but not signed by any
// authenticator), so a test can show what is rejected before the
// signature is even looked at.
const junkResponse = `{"id":"AAAA","rawId":"AAAA","type":"public-key","response":{"clientDataJSON":"e30","attestationObject":"oA"}}`

func TestPasskeyFinishRejectsBadSession(t *testing.T) {
	p := testPasskeys(t)
	u := &PasskeyUser{ID: NewUserHandle(), Name: "anna"}
	other := &PasskeyUser{ID: NewUserHandle(), Name: "bert"}
	_, regSession, err := p.BeginRegistration(u)
	if err != nil {
		t.Fatal(err)
	}
	_, pkSession, err := p.BeginPasskeyLogin()
	if err != nil {
		t.Fatal(err)
	}
	expired := rewriteSession(t, regSession, func(sd *webauthn.SessionData) { sd.Expires = time.Now().Add(-time.Second) })
	noChallenge := rewriteSession(t, regSession, func(sd *webauthn.SessionData) { sd.Challenge = "" })
	resp := []byte(junkResponse)

	cases := map[string]func() error{
		"garbage":          func() error { _, err := p.FinishRegistration(u, []byte("not json"), resp); return err },
		"empty":            func() error { _, err := p.FinishRegistration(u, nil, resp); return err },
		"another user":     func() error { _, err := p.FinishRegistration(other, regSession, resp); return err },
		"expired":          func() error { _, err := p.FinishRegistration(u, expired, resp); return err },
		"no challenge":     func() error { _, err := p.FinishRegistration(u, noChallenge, resp); return err },
		"login with reg":   func() error { _, err := p.FinishLogin(u, regSession, resp); return err },
		"reg with passkey": func() error { _, err := p.FinishRegistration(u, pkSession, resp); return err },
		"passkey with reg": func() error {
			_, _, err := p.FinishPasskeyLogin(func([]byte) (*PasskeyUser, error) { return u, nil }, regSession, resp)
			return err
		},
	}
	for name, f := range cases {
		if err := f(); !errors.Is(err, ErrPasskeySession) {
			t.Errorf("%s: err = %v, want ErrPasskeySession", name, err)
		}
	}
}

func TestPasskeyFinishRejectsBadResponse(t *testing.T) {
	p := testPasskeys(t)
	u := &PasskeyUser{ID: NewUserHandle(), Name: "anna"}
	_, session, err := p.BeginRegistration(u)
	if err != nil {
		t.Fatal(err)
	}
	for name, resp := range map[string][]byte{
		"empty":     nil,
		"not json":  []byte("{"),
		"junk":      []byte(junkResponse),
		"oversized": []byte(`{"id":"` + strings.Repeat("A", MaxPasskeyResponse) + `"}`),
	} {
		if _, err := p.FinishRegistration(u, session, resp); !errors.Is(err, ErrPasskeyRejected) {
			t.Errorf("%s: err = %v, want ErrPasskeyRejected", name, err)
		}
	}
}

func rewriteSession(t *testing.T, b []byte, f func(*webauthn.SessionData)) []byte {
	t.Helper()
	var s passkeySession
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	f(&s.Data)
	out, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
