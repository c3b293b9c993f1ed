package browser

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// trustCA makes an NSS database in home/.pki/nssdb that trusts the CA in
// caFile for TLS servers ("C,,"), which Chromium on Linux reads as the
// user's certificate store.
func trustCA(home, caFile string) error {
	certutil, err := exec.LookPath("certutil")
	if err != nil {
		return fmt.Errorf("trusting %s needs certutil (Debian's libnss3-tools: bash .ci/deps.sh): %w", caFile, err)
	}
	db := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(db, 0o700); err != nil {
		return fmt.Errorf("nss db: %w", err)
	}
	for _, args := range [][]string{
		{"-N", "-d", "sql:" + db, "--empty-password"},
		{"-A", "-d", "sql:" + db, "-n", "veilig-test-ca", "-t", "C,,", "-i", caFile},
	} {
		out, err := exec.Command(certutil, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("certutil %s: %v: %s", args[0], err, out)
		}
	}
	return nil
}
