package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Environment of a test binary re-executed inside a network namespace
// (see netns_test.go): it must not rebuild veilig.
const (
	envNetnsChild = "E2E_NETNS_CHILD"
	envVeiligBin  = "E2E_VEILIG_BIN"
)

var (
	veiligBin string // path of the veilig binary built for this run
	buildErr  error  // set when building it failed
)

func TestMain(m *testing.M) {
	if bin := os.Getenv(envVeiligBin); bin != "" {
		veiligBin = bin
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "veilig-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		os.Exit(2)
	}
	veiligBin = filepath.Join(dir, "veilig")
	buildErr = buildVeilig(veiligBin)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildVeilig builds ./cmd/veilig of the module root (the parent of test/).
func buildVeilig(out string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/veilig")
	cmd.Dir = ".."
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/veilig: %v\n%s", err, b)
	}
	return nil
}

// requireVeilig returns the built binary or fails the test with the build error.
func requireVeilig(t *testing.T) string {
	t.Helper()
	if buildErr != nil {
		t.Fatalf("veilig binary not available: %v", buildErr)
	}
	return veiligBin
}
