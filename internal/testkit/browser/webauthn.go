package browser

import (
	"context"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// AddVirtualAuthenticator enables the DevTools WebAuthn domain and adds
// a virtual platform authenticator, as a laptop with a fingerprint reader
// would be: CTAP2.1, internal transport, resident keys (passkeys), user
// verification that succeeds, and presence confirmed without a touch.
// Pages' navigator.credentials.create() and get() then talk to it.
func (b *Browser) AddVirtualAuthenticator() webauthn.AuthenticatorID {
	b.t.Helper()
	var id webauthn.AuthenticatorID
	b.Do("add virtual authenticator", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		off := false
		if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{EnableUI: &off}); err != nil {
			return err
		}
		r, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
			Options: &webauthn.VirtualAuthenticatorOptions{
				Protocol:                    webauthn.AuthenticatorProtocolCtap2,
				Ctap2version:                webauthn.Ctap2versionCtap21,
				Transport:                   webauthn.AuthenticatorTransportInternal,
				HasResidentKey:              true,
				HasUserVerification:         true,
				IsUserVerified:              true,
				AutomaticPresenceSimulation: true,
			},
		})
		id = r.AuthenticatorID
		return err
	}))
	return id
}

// Credentials lists what the virtual authenticator holds.
func (b *Browser) Credentials(id webauthn.AuthenticatorID) []*webauthn.Credential {
	b.t.Helper()
	var creds []*webauthn.Credential
	b.Do("list authenticator credentials", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		r, err := chromedp.Call(ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: id})
		creds = r.Credentials
		return err
	}))
	return creds
}

// SetUserVerified makes the authenticator's user verification succeed
// or fail, for a test of a refused fingerprint.
func (b *Browser) SetUserVerified(id webauthn.AuthenticatorID, ok bool) {
	b.t.Helper()
	b.Do("set user verified", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Call(ctx, webauthn.SetUserVerified, webauthn.SetUserVerifiedParams{AuthenticatorID: id, IsUserVerified: ok})
		return err
	}))
}
