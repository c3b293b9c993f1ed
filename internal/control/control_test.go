package control

import (
	"os"
	"path/filepath"
	"testing"
)

// TestPrivateDir: the socket's directory is made 0700, and one that is
// open to others or is a link is refused.
func TestPrivateDir(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "veilig-x")
	if err := privateDir(dir); err != nil {
		t.Fatalf("new dir: %v", err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Fatalf("mode %o, want 0700", fi.Mode().Perm())
	}
	if err := privateDir(dir); err != nil {
		t.Fatalf("existing private dir: %v", err)
	}
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := privateDir(open); err == nil {
		t.Fatal("a directory open to others was accepted")
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if err := privateDir(link); err == nil {
		t.Fatal("a symlink was accepted")
	}
}
