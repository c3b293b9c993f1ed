// Package datakey holds the data key that encrypts secrets at rest, such as
// the stored digest HA1 values, and derives the sub-keys other packages need
// (the nonce HMAC secret, the fake-HA1 key). Keeping one key file, separate
// from the database, means a stolen database or backup alone yields no
// usable credentials.
package datakey

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
)

// Size is the length of the key in bytes (AES-256).
const Size = 32

// version is the first byte of every sealed message, so the format can
// change (new cipher, new key) without guessing at old data.
const version byte = 1

// HKDF info strings. Seal and Derive use different prefixes, so no label a
// caller passes to Derive can reproduce the sealing key.
const (
	sealInfo    = "veilig/datakey/seal/v1"
	deriveInfo  = "veilig/datakey/derive/"
	fingerprint = "veilig/datakey/id/v1"
)

// ErrDecrypt is returned by Open for anything that does not authenticate:
// wrong key, tampered bytes, wrong associated data, truncation, unknown
// version. One error for all, so callers cannot become an oracle.
var ErrDecrypt = errors.New("datakey: cannot decrypt: wrong key, wrong context, or tampered data")

// Key is the data key. Its String, GoString, Format and LogValue methods
// print only a fingerprint, never key material.
type Key struct {
	secret [Size]byte
	aead   cipher.AEAD
	id     string
}

// New wraps raw key bytes. Most callers want LoadOrCreate; New exists for
// tests and for keys held elsewhere (a KMS, an environment secret).
func New(raw []byte) (*Key, error) {
	if len(raw) != Size {
		return nil, fmt.Errorf("datakey: key is %d bytes, want %d", len(raw), Size)
	}
	k := &Key{}
	copy(k.secret[:], raw)
	sealKey := k.hkdf(sealInfo)
	block, err := aes.NewCipher(sealKey)
	if err != nil {
		return nil, fmt.Errorf("datakey: %w", err)
	}
	// A random 96-bit nonce per message is safe for far more seals than
	// Veilig will ever make with one key (one per secret change).
	k.aead, err = cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("datakey: %w", err)
	}
	k.id = hex.EncodeToString(k.hkdf(fingerprint)[:8])
	return k, nil
}

func (k *Key) hkdf(info string) []byte {
	out, err := hkdf.Key(sha256.New, k.secret[:], nil, info, Size)
	if err != nil {
		// Only reachable when asking for more than 255*32 bytes.
		panic("datakey: hkdf: " + err.Error())
	}
	return out
}

// Seal encrypts plaintext with AES-256-GCM, binding it to associatedData
// (for an HA1, the extension number and realm), so a sealed value copied to
// another row will not open there. The result is
// version || nonce || ciphertext || tag.
func (k *Key) Seal(plaintext, associatedData []byte) []byte {
	out := make([]byte, 1, 1+k.aead.Overhead()+len(plaintext))
	out[0] = version
	return k.aead.Seal(out, nil, plaintext, associatedData)
}

// Open reverses Seal. It fails with ErrDecrypt unless sealed was made by
// this key with the same associatedData and is unmodified.
func (k *Key) Open(sealed, associatedData []byte) ([]byte, error) {
	if len(sealed) < 1+k.aead.Overhead() || sealed[0] != version {
		return nil, ErrDecrypt
	}
	pt, err := k.aead.Open(nil, nil, sealed[1:], associatedData)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// Derive returns a 32-byte sub-key for label (HKDF-SHA256), such as the
// nonce HMAC secret or the fake-HA1 key, so that each use has its own key
// and none of them is the data key itself. The same label always yields
// the same sub-key for the same data key.
func (k *Key) Derive(label string) []byte {
	return k.hkdf(deriveInfo + label)
}

// ID is a short public fingerprint of the key, for telling keys apart in
// logs and backups without revealing anything about them.
func (k *Key) ID() string { return k.id }

// String implements fmt.Stringer without key material.
func (k *Key) String() string {
	if k == nil {
		return "datakey(nil)"
	}
	return "datakey(" + k.id + ")"
}

// GoString keeps %#v from dumping the struct.
func (k *Key) GoString() string { return k.String() }

// Format makes every fmt verb, %x and %d included, print String.
func (k *Key) Format(f fmt.State, verb rune) { fmt.Fprint(f, k.String()) }

// LogValue implements slog.LogValuer without key material.
func (k *Key) LogValue() slog.Value { return slog.StringValue(k.String()) }
