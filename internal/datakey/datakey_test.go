package datakey

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func testKey(t *testing.T, fill byte) *Key {
	t.Helper()
	k, err := New(bytes.Repeat([]byte{fill}, Size))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpenRoundTrip(t *testing.T) {
	k := testKey(t, 1)
	ad := []byte("1001@veilig.test")
	for _, pt := range [][]byte{nil, {}, []byte("0123456789abcdef0123456789abcdef"), bytes.Repeat([]byte{0xff}, 4096)} {
		sealed := k.Seal(pt, ad)
		if sealed[0] != version {
			t.Errorf("sealed[0] = %d, want version %d", sealed[0], version)
		}
		if len(pt) > 0 && bytes.Contains(sealed, pt) {
			t.Error("sealed output contains the plaintext")
		}
		got, err := k.Open(sealed, ad)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if !bytes.Equal(got, pt) {
			t.Errorf("Open = %x, want %x", got, pt)
		}
	}
}

func TestSealIsRandomized(t *testing.T) {
	k := testKey(t, 1)
	a, b := k.Seal([]byte("secret"), nil), k.Seal([]byte("secret"), nil)
	if bytes.Equal(a, b) {
		t.Error("two seals of the same plaintext are identical; nonce not random")
	}
}

func TestOpenRejectsTampering(t *testing.T) {
	k := testKey(t, 1)
	ad := []byte("ad")
	sealed := k.Seal([]byte("the HA1 value"), ad)
	for i := range sealed {
		for _, bit := range []byte{0x01, 0x80} {
			c := bytes.Clone(sealed)
			c[i] ^= bit
			if _, err := k.Open(c, ad); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("byte %d bit %#x flipped: Open error = %v, want ErrDecrypt", i, bit, err)
			}
		}
	}
	for n := range len(sealed) {
		if _, err := k.Open(sealed[:n], ad); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("truncated to %d bytes: error = %v, want ErrDecrypt", n, err)
		}
	}
	if _, err := k.Open(append(bytes.Clone(sealed), 0), ad); !errors.Is(err, ErrDecrypt) {
		t.Errorf("extended: error = %v, want ErrDecrypt", err)
	}
}

func TestOpenRejectsWrongContext(t *testing.T) {
	k := testKey(t, 1)
	sealed := k.Seal([]byte("ha1"), []byte("1001"))
	for _, ad := range [][]byte{nil, []byte("1002"), []byte("1001 ")} {
		if _, err := k.Open(sealed, ad); !errors.Is(err, ErrDecrypt) {
			t.Errorf("AD %q: error = %v, want ErrDecrypt", ad, err)
		}
	}
	if _, err := testKey(t, 2).Open(sealed, []byte("1001")); !errors.Is(err, ErrDecrypt) {
		t.Errorf("other key: error = %v, want ErrDecrypt", err)
	}
}

func TestDerive(t *testing.T) {
	k1, k1again, k2 := testKey(t, 1), testKey(t, 1), testKey(t, 2)
	a := k1.Derive("nonce-hmac")
	if len(a) != Size {
		t.Fatalf("Derive returned %d bytes, want %d", len(a), Size)
	}
	if !bytes.Equal(a, k1.Derive("nonce-hmac")) || !bytes.Equal(a, k1again.Derive("nonce-hmac")) {
		t.Error("Derive is not deterministic")
	}
	seen := map[string]string{hex.EncodeToString(k1.secret[:]): "the key itself"}
	for _, c := range []struct {
		name string
		b    []byte
	}{
		{"nonce-hmac", a},
		{"fake-ha1", k1.Derive("fake-ha1")},
		{"empty label", k1.Derive("")},
		{"other key", k2.Derive("nonce-hmac")},
		{"seal key", k1.hkdf(sealInfo)},
	} {
		h := hex.EncodeToString(c.b)
		if prev, dup := seen[h]; dup {
			t.Errorf("%s equals %s", c.name, prev)
		}
		seen[h] = c.name
	}
}

func TestNewRejectsBadSize(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33} {
		if _, err := New(make([]byte, n)); err == nil {
			t.Errorf("New(%d bytes) succeeded", n)
		}
	}
}

func TestNeverPrintsKey(t *testing.T) {
	raw := bytes.Repeat([]byte{0xab}, Size)
	k, err := New(raw)
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("loaded", "key", k)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("loaded", "key", k)
	outs := []string{logged.String()}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%d", "%q"} {
		outs = append(outs, fmt.Sprintf(verb, k))
	}
	outs = append(outs, fmt.Sprint(k), fmt.Sprintf("%v", []*Key{k}), fmt.Sprintf("%+v", struct{ K *Key }{k}))
	for _, out := range outs {
		low := strings.ToLower(out)
		if strings.Contains(low, "abab") || strings.Contains(low, "171 171") || strings.Contains(out, "\xab\xab") {
			t.Errorf("output reveals key: %q", out)
		}
		if !strings.Contains(out, k.ID()) {
			t.Errorf("output %q lacks the fingerprint %s", out, k.ID())
		}
	}
	var nilKey *Key
	if s := fmt.Sprint(nilKey); s != "datakey(nil)" {
		t.Errorf("nil key prints %q", s)
	}
}

func TestLoadOrCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data.key")
	k1, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %v, want 0600", fi.Mode().Perm())
	}
	if fi.Size() != Size {
		t.Errorf("key file is %d bytes, want %d", fi.Size(), Size)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".datakey-*")); len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}

	k2, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	if k1.ID() != k2.ID() {
		t.Error("reloading the key file gave a different key")
	}
	sealed := k1.Seal([]byte("ha1"), []byte("ad"))
	if pt, err := k2.Open(sealed, []byte("ad")); err != nil || string(pt) != "ha1" {
		t.Errorf("reloaded key cannot open: %q, %v", pt, err)
	}

	other, err := LoadOrCreate(filepath.Join(t.TempDir(), "data.key"))
	if err != nil {
		t.Fatal(err)
	}
	if other.ID() == k1.ID() {
		t.Error("two fresh key files hold the same key")
	}
}

func TestLoadOrCreateRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data.key")
	const n = 8
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			k, err := LoadOrCreate(path)
			errs[i] = err
			if err == nil {
				ids[i] = k.ID()
			}
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("LoadOrCreate %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("concurrent LoadOrCreate produced different keys: %v", ids)
		}
	}
}

func TestLoadRefusesOpenPermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no unix permissions")
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o660, 0o602} {
		path := filepath.Join(t.TempDir(), "data.key")
		if err := os.WriteFile(path, make([]byte, Size), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadOrCreate(path)
		if err == nil {
			t.Errorf("mode %v: key accepted", mode)
			continue
		}
		if want := "chmod 600 " + path; !strings.Contains(err.Error(), want) {
			t.Errorf("mode %v: error %q does not say %q", mode, err, want)
		}
		// The file must be left as it was, not replaced by a new key.
		if b, _ := os.ReadFile(path); !bytes.Equal(b, make([]byte, Size)) {
			t.Errorf("mode %v: key file was modified", mode)
		}
	}
}

func TestLoadRejectsBadFiles(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string][]byte{
		"empty": {},
		"short": make([]byte, Size-1),
		"long":  make([]byte, Size+1),
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreate(path); err == nil {
			t.Errorf("%s key file accepted", name)
		}
	}
	if _, err := LoadOrCreate(dir); err == nil {
		t.Error("directory accepted as key file")
	}
	if _, err := LoadOrCreate(filepath.Join(dir, "missing", "data.key")); err == nil {
		t.Error("key created in a missing directory")
	}
}

func TestLoadNeverCreates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outside.key")
	if _, err := Load(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing file: %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load created %s", path)
	}
	k1, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if k1.ID() != k2.ID() {
		t.Errorf("Load read key %s, LoadOrCreate made %s", k2.ID(), k1.ID())
	}
}

func TestCheckID(t *testing.T) {
	idPath := filepath.Join(t.TempDir(), "data.key.id")
	k1, k2 := testKey(t, 1), testKey(t, 2)
	if err := CheckID(idPath, k1); err != nil {
		t.Fatalf("first CheckID records the id: %v", err)
	}
	if got, err := ReadID(idPath); err != nil || got != k1.ID() {
		t.Fatalf("ReadID = %q, %v; want %q", got, err, k1.ID())
	}
	if err := CheckID(idPath, k1); err != nil {
		t.Errorf("same key: %v", err)
	}
	err := CheckID(idPath, k2)
	if !errors.Is(err, ErrWrongKey) {
		t.Fatalf("other key: %v, want ErrWrongKey", err)
	}
	if !strings.Contains(err.Error(), k1.ID()) || !strings.Contains(err.Error(), k2.ID()) {
		t.Errorf("error %q should name both ids", err)
	}
	if err := os.WriteFile(idPath, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CheckID(idPath, k1); err == nil || errors.Is(err, ErrWrongKey) {
		t.Errorf("empty id file: %v, want a format error", err)
	}
}
