// Package authn holds the credential primitives of the admin plane:
// Argon2id password hashes, TOTP with replay protection, one-time
// recovery codes, opaque session and API tokens, the login-attempt
// limiter, and a thin WebAuthn (passkey) wrapper.
//
// It knows nothing of HTTP routing, storage or roles. Every function that
// depends on time takes it as an argument, and every secret is returned in
// two forms: the value to show once and the form to store (a hash, or for
// TOTP the secret that the caller seals with the data key before storing).
package authn
