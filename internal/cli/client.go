package cli

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"

	"github.com/veilig/veilig/internal/app"
	"github.com/veilig/veilig/internal/config"
	"github.com/veilig/veilig/internal/control"
	"github.com/veilig/veilig/internal/service"
)

// session is how one management command reaches the service.
type session struct {
	cfg    *config.Config
	caller service.Caller
	live   bool // the running server answered
	close  func()
}

// connect finds the data directory, then the running server's control
// socket in it; without a server it opens the store itself.
func (c *common) connect(ctx context.Context, e env) (*session, error) {
	cfg, err := c.locate(e)
	if err != nil {
		return nil, err
	}
	sock := cfg.ControlSocketPath()
	if control.Running(sock) {
		return &session{cfg: cfg, caller: control.Client{Path: sock}, live: true, close: func() {}}, nil
	}
	st, key, err := app.OpenData(ctx, cfg, false)
	if err != nil {
		return nil, err
	}
	svc := service.New(service.Deps{Store: st, Key: key, Config: cfg})
	return &session{cfg: cfg, caller: service.Local{S: svc, Actor: localActor()}, close: func() { st.Close() }}, nil
}

func localActor() service.Actor {
	name := fmt.Sprintf("uid %d", os.Getuid())
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return service.Actor{Name: name, Role: service.RoleOwner, Channel: service.CLI, Source: "local"}
}

// locate loads the config and checks that its data directory holds a
// Veilig store. With no hint at all (flag, environment or config file) it
// takes ./veilig-data when that exists, else the installed config.
func (c *common) locate(e env) (*config.Config, error) {
	file := c.configFile
	if file == "" {
		file = e.getenv("VEILIG_CONFIG")
	}
	hinted := file != "" || c.dataDir != "" || e.getenv("VEILIG_DATA_DIR") != "" ||
		slices.ContainsFunc(c.sets, func(s string) bool { return strings.HasPrefix(s, "data_dir=") })
	var looked []string
	if !hinted {
		def := config.Default().DataDir
		if exists(filepath.Join(def, "veilig.db")) {
			looked = append(looked, def)
		} else {
			looked = append(looked, def+" (the default, not present)")
			if exists(config.InstalledFile) {
				file = config.InstalledFile
			} else {
				looked = append(looked, config.InstalledFile+" (not present)")
			}
		}
	}
	cfg, err := c.loadFile(file, nil)
	if err != nil {
		return nil, err
	}
	if !exists(cfg.DBPath()) {
		where := cfg.DataDir
		if abs, err := filepath.Abs(where); err == nil {
			where = abs
		}
		msg := fmt.Sprintf("no Veilig data in %s", where)
		if file != "" {
			msg += fmt.Sprintf(" (data_dir of %s)", file)
		}
		if len(looked) > 0 && file == "" {
			msg = "no Veilig data directory found: looked at " + strings.Join(looked, " and ")
		}
		return nil, fmt.Errorf("%s.\nPoint at the server's data directory with --data-dir DIR, VEILIG_DATA_DIR=DIR or --config FILE (the one `veilig serve` uses); `veilig serve` creates it on first start", msg)
	}
	return cfg, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
