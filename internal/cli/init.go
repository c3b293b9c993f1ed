package cli

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"

	"github.com/veilig/veilig/internal/app"
)

// runInit makes a data directory (data key and store) before the first
// `veilig serve`, so extensions can be imported into it first (a
// provisioning script, a benchmark). Management commands never create one
// by themselves: a mistyped directory must not become a second, empty
// installation.
func runInit(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var c common
	c.register(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("unexpected argument %q (usage: veilig init [--data-dir DIR | --config FILE])", pos[0])
	}
	cfg, err := c.load(e, nil)
	if err != nil {
		return err
	}
	where, _ := filepath.Abs(cfg.DataDir)
	if exists(cfg.DBPath()) {
		return fmt.Errorf("%s already holds Veilig data; nothing to do", where)
	}
	st, _, err := app.OpenData(ctx, cfg, true)
	if err != nil {
		return err
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("init %s: %w", where, err)
	}
	fmt.Fprintf(e.stdout, "made the data directory %s (data key and store); `veilig serve` adds the TLS certificate on first start\n", where)
	return nil
}
