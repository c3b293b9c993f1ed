package cli

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
)

// importExtensions provisions NUMBER:SECRET lines; every secret still
// passes the password policy.
func importExtensions(ctx context.Context, e env, path string, create func(number, secret string) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n, line := 0, 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		number, secret, ok := strings.Cut(t, ":")
		if !ok {
			return fmt.Errorf("%s:%d: want NUMBER:SECRET", path, line)
		}
		if err := create(number, secret); err != nil {
			return fmt.Errorf("%s:%d: %w", path, line, err)
		}
		n++
	}
	if err := sc.Err(); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Imported %d extensions.\n", n)
	return nil
}
