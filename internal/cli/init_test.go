package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInitThenImport: a management command refuses a directory with no
// data, init makes it once, and an import then lands in it.
func TestInitThenImport(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	users := filepath.Join(t.TempDir(), "users.txt")
	if err := os.WriteFile(users, []byte("1001:Correct-Horse-Battery-9\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := Main(args, strings.NewReader(""), &out, &errb)
		return code, out.String() + errb.String()
	}
	if code, out := run("ext", "list", "--data-dir", dir); code == 0 || !strings.Contains(out, "no Veilig data in") {
		t.Fatalf("ext list before init: exit %d, %q; want a refusal naming the directory", code, out)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("a refused command created %s", dir)
	}
	if code, out := run("init", "--data-dir", dir); code != 0 || !strings.Contains(out, "made the data directory") {
		t.Fatalf("init: exit %d, %q", code, out)
	}
	if code, out := run("init", "--data-dir", dir); code == 0 || !strings.Contains(out, "already holds Veilig data") {
		t.Fatalf("second init: exit %d, %q; want a refusal", code, out)
	}
	if code, out := run("ext", "import", users, "--data-dir", dir); code != 0 {
		t.Fatalf("ext import after init: exit %d, %q", code, out)
	}
	code, out := run("ext", "list", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "1001") {
		t.Fatalf("ext list after import: exit %d, %q", code, out)
	}
}
