// Package cli is Veilig's command line: one file per subcommand, stdlib
// flags, errors that say what to fix. Management commands are thin clients
// of the service layer: they run each operation in the running server
// through its control socket when one answers, and locally against the
// store when none does; they never create a data directory.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/veilig/veilig/internal/config"
	"github.com/veilig/veilig/internal/service"
)

// env is the process environment, swappable in tests.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e env, args []string) error
}

func commands() []command {
	return []command{
		{"serve", "run the server", runServe},
		{"init", "make a data directory before the first serve (to import extensions into)", runInit},
		{"ext", "manage extensions (SIP accounts): add, list, remove, passwd, set, unlock, lift, import", runExt},
		{"regs", "list registered devices", runRegs},
		{"ban", "manage source bans (addresses and networks): list, add, remove", runBan},
		{"trunk", "manage carrier trunks: add, set, list, remove", runTrunk},
		{"why", "explain everything that refuses a source or extension", runWhy},
		{"calls", "list call records (--live: calls in progress; hangup ID)", runCalls},
		{"events", "list security events (kinds: the event catalogue)", runEvents},
		{"auditlog", "list the audit log of management changes", runAuditLog},
		{"backup", "write an encrypted backup of the store (with --with-key, also the data key)", runBackup},
		{"restore", "restore a backup into a data directory", runRestore},
		{"version", "print the version", runVersion},
	}
}

// Main runs the command line and returns the exit status.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv}
	args, err := hoistGlobalFlags(args)
	if err != nil {
		fmt.Fprintf(stderr, "veilig: %v\n", err)
		return 2
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(context.Background(), e, args[1:])
			if err == nil {
				return 0
			}
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			fmt.Fprintf(stderr, "veilig %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "veilig: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

// hoistGlobalFlags moves the flags every command takes from before the
// command name to after it ("veilig --config F ext list" is "veilig ext
// list --config F"), where the subcommand parses them.
func hoistGlobalFlags(args []string) ([]string, error) {
	var global []string
	for len(args) > 0 && strings.HasPrefix(args[0], "-") && args[0] != "-h" && args[0] != "--help" {
		name, _, hasValue := strings.Cut(strings.TrimLeft(args[0], "-"), "=")
		switch name {
		case "config", "data-dir", "set":
		default:
			return nil, fmt.Errorf("flag %s must follow a command (global flags are --config, --data-dir and --set)", args[0])
		}
		global = append(global, args[0])
		args = args[1:]
		if !hasValue {
			if len(args) == 0 {
				return nil, fmt.Errorf("flag --%s needs a value", name)
			}
			global = append(global, args[0])
			args = args[1:]
		}
	}
	if len(args) == 0 {
		if len(global) > 0 {
			return nil, errors.New("a command is missing after the flags (see `veilig help`)")
		}
		return args, nil
	}
	return append(append([]string{args[0]}, args[1:]...), global...), nil
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: veilig <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nevery command takes --config FILE, --data-dir DIR and --set key=value (env VEILIG_CONFIG, VEILIG_DATA_DIR),")
	fmt.Fprintln(w, "before or after the command name")
}

// common are the flags every command shares.
type common struct {
	configFile string
	dataDir    string
	sets       multi
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.configFile, "config", "", "YAML config `file` (env VEILIG_CONFIG)")
	fs.StringVar(&c.dataDir, "data-dir", "", "data `directory` (overrides data_dir)")
	fs.Var(&c.sets, "set", "override one config key, `key=value` (repeatable)")
}

// load builds the config from file, env and flags.
func (c *common) load(e env, extra map[string]string) (*config.Config, error) {
	file := c.configFile
	if file == "" {
		file = e.getenv("VEILIG_CONFIG")
	}
	return c.loadFile(file, extra)
}

func (c *common) loadFile(file string, extra map[string]string) (*config.Config, error) {
	ov := map[string]string{}
	for k, v := range extra {
		if v != "" {
			ov[k] = v
		}
	}
	if c.dataDir != "" {
		ov["data_dir"] = c.dataDir
	}
	for _, s := range c.sets {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return nil, fmt.Errorf("--set %q: want key=value", s)
		}
		ov[k] = v
	}
	return config.Load(config.LoadOptions{File: file, Env: os.Environ(), Overrides: ov, ExtraEnv: []string{"VEILIG_CONFIG"}})
}

// parse parses flags that may come before, between or after positional
// arguments ("ext add 1001 --name X").
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// explain turns an operation's error into the sentence the CLI prints.
func explain(err error) error {
	var se *service.Error
	if errors.As(err, &se) {
		return errors.New(se.Message)
	}
	return err
}
