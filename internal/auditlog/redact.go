package auditlog

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// RedactedPrefix starts every value Redact put in place of a secret.
const RedactedPrefix = "hmac-sha256:"

// MinRedactKeyLen is the shortest key Redact accepts. The key turns a
// guessable secret (a chosen password) into a value nobody without the
// key can test guesses against, so it must itself be unguessable.
const MinRedactKeyLen = 16

// secretWords mark a JSON member as a secret when its normalised name
// (lower case, without '_', '-' and '.') contains one of them.
var secretWords = []string{"secret", "password", "passwd", "passphrase", "token", "privatekey", "apikey", "recoverycode", "ha1"}

// notSecretSuffixes name members that identify or point at a secret
// rather than hold it (token_id, key_file), so the audit keeps them.
var notSecretSuffixes = []string{"id", "ids", "file", "path"}

// Redact returns v as compact JSON with every secret replaced by
// "hmac-sha256:<hex>", the HMAC-SHA256 under key of the secret's compact
// JSON encoding. The same secret under the same key always gives the same
// value, so an auditor can see that a secret changed (Before and After
// differ) or did not, without seeing it.
//
// A member is a secret when a struct field that produces it is tagged
// `audit:"secret"`, or when its name contains one of secret, password,
// passwd, passphrase, token, privatekey, apikey, recoverycode or ha1
// (ignoring case, '_', '-' and '.') and does not end in id, ids, file or
// path. A field tagged `audit:"plain"` is exempt from the name rule. Tags
// are read from v's type; the rule then applies by name at every depth,
// which errs toward hiding. A JSON null stays null: it reveals nothing.
//
// v may be anything encoding/json marshals, json.RawMessage included.
func Redact(key []byte, v any) (json.RawMessage, error) {
	if len(key) < MinRedactKeyLen {
		return nil, fmt.Errorf("auditlog: redact key is %d bytes, at least %d needed", len(key), MinRedactKeyLen)
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("auditlog: redact: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, fmt.Errorf("auditlog: redact: %w", err)
	}
	r := redactor{key: key, secret: map[string]bool{}, plain: map[string]bool{}}
	r.collectTags(reflect.TypeOf(v), map[reflect.Type]bool{})
	tree, err = r.walk(tree)
	if err != nil {
		return nil, err
	}
	out, err := json.Marshal(tree)
	if err != nil {
		return nil, fmt.Errorf("auditlog: redact: %w", err)
	}
	return out, nil
}

type redactor struct {
	key           []byte
	secret, plain map[string]bool // normalised member names from struct tags
}

func normalise(name string) string {
	return strings.NewReplacer("_", "", "-", "", ".", "").Replace(strings.ToLower(name))
}

func (r *redactor) isSecret(name string) bool {
	n := normalise(name)
	if r.secret[n] {
		return true
	}
	if r.plain[n] {
		return false
	}
	for _, s := range notSecretSuffixes {
		if strings.HasSuffix(n, s) {
			return false
		}
	}
	for _, w := range secretWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// collectTags records the JSON names of fields tagged audit:"secret" or
// audit:"plain" anywhere in t.
func (r *redactor) collectTags(t reflect.Type, seen map[reflect.Type]bool) {
	if t == nil || seen[t] {
		return
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array:
		r.collectTags(t.Elem(), seen)
	case reflect.Map:
		r.collectTags(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			name := f.Name
			if tag, ok := f.Tag.Lookup("json"); ok {
				if n, _, _ := strings.Cut(tag, ","); n == "-" {
					continue
				} else if n != "" {
					name = n
				}
			}
			switch f.Tag.Get("audit") {
			case "secret":
				r.secret[normalise(name)] = true
			case "plain":
				r.plain[normalise(name)] = true
			}
			r.collectTags(f.Type, seen)
		}
	}
}

func (r *redactor) walk(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		for k, child := range x {
			if r.isSecret(k) {
				if child == nil {
					continue
				}
				h, err := r.hash(child)
				if err != nil {
					return nil, err
				}
				x[k] = h
				continue
			}
			c, err := r.walk(child)
			if err != nil {
				return nil, err
			}
			x[k] = c
		}
		return x, nil
	case []any:
		for i, child := range x {
			c, err := r.walk(child)
			if err != nil {
				return nil, err
			}
			x[i] = c
		}
		return x, nil
	default:
		return v, nil
	}
}

func (r *redactor) hash(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("auditlog: redact: %w", err)
	}
	m := hmac.New(sha256.New, r.key)
	m.Write(b)
	return RedactedPrefix + hex.EncodeToString(m.Sum(nil)), nil
}
