package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"
	"golang.org/x/term"

	"github.com/veilig/veilig/internal/app"
	"github.com/veilig/veilig/internal/backup"
	"github.com/veilig/veilig/internal/datakey"
)

const backupUsage = `usage:
  veilig backup FILE [--with-key] [--passphrase-file F | --recipient age1... | --recipients-file F] [--force]
  veilig restore FILE --data-dir DIR [--passphrase-file F | --identity F] [--data-key-file F] [--force]`

// minPassphrase is the shortest passphrase a backup is encrypted to: the
// backup leaves the machine, so the passphrase is all that guards it.
const minPassphrase = 12

// runBackup writes an encrypted online backup while the server runs.
func runBackup(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var c common
	c.register(fs)
	withKey := fs.Bool("with-key", false, "include the data key (then the backup alone opens every stored secret)")
	passFile := fs.String("passphrase-file", "", "read the passphrase from `file` (- for stdin); default: ask")
	var recips multi
	fs.Var(&recips, "recipient", "encrypt to this age public `key` (age1...; repeatable) instead of a passphrase")
	recipFile := fs.String("recipients-file", "", "encrypt to the age recipients listed in `file`")
	force := fs.Bool("force", false, "overwrite FILE if it exists")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("backup takes one argument, the output FILE (- for stdout)\n" + backupUsage)
	}
	out := pos[0]
	cfg, err := c.locate(e)
	if err != nil {
		return err
	}
	recipients, err := backupRecipients(e, recips, *recipFile, *passFile)
	if err != nil {
		return err
	}
	if _, err := os.Stat(cfg.DBPath()); err != nil {
		return fmt.Errorf("no Veilig store at %s (%v): point at the server's data with --data-dir DIR, "+
			"VEILIG_DATA_DIR or --config FILE", cfg.DBPath(), err)
	}
	keyID, src, err := app.DataKeyID(cfg)
	if err != nil {
		return err
	}
	contents := backup.Contents{TLSDir: cfg.TLSDir(), KeyID: keyID, TempDir: cfg.DataDir, Version: app.Version, Now: time.Now()}
	if *withKey {
		contents.KeyFile = src.Path
	}
	st, _, err := app.OpenData(ctx, cfg, false)
	if err != nil {
		return err
	}
	defer st.Close()
	snap, ok := st.(backup.Snapshotter)
	if !ok {
		return errors.New("this store backend cannot take a consistent snapshot; back it up with the database's own tools")
	}
	contents.Store = snap

	report := e.stdout
	var m backup.Manifest
	if out == "-" {
		if f, ok := e.stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			return errors.New("refusing to write a backup to a terminal: give a FILE or redirect stdout")
		}
		report = e.stderr
		if m, err = backup.Write(ctx, e.stdout, contents, recipients...); err != nil {
			return err
		}
	} else if m, err = writeBackupFile(ctx, out, *force, contents, recipients); err != nil {
		return err
	}
	var dbSize int64
	certs := 0
	for _, f := range m.Files {
		switch {
		case f.Name == "veilig.db":
			dbSize = f.Size
		case strings.HasPrefix(f.Name, "tls/"):
			certs++
		}
	}
	fmt.Fprintf(report, "Backup written to %s: the store as of %s (%d KiB) and %d certificate files.\n",
		out, m.Created.Local().Format(time.DateTime), dbSize>>10, certs)
	if m.WithKey {
		fmt.Fprintf(report, "It includes the data key (id %s): whoever can decrypt it can open every stored secret.\n", m.DataKeyID)
	} else {
		fmt.Fprintf(report, "It does not include the data key (id %s, read from %s): a restore needs that key, so keep a copy of it apart from the backups.\n", m.DataKeyID, src.Path)
	}
	return nil
}

// writeBackupFile writes to a temporary file beside out and renames it
// into place, so an interrupted backup never leaves a truncated FILE.
func writeBackupFile(ctx context.Context, out string, force bool, c backup.Contents, rs []age.Recipient) (backup.Manifest, error) {
	if _, err := os.Lstat(out); err == nil && !force {
		return backup.Manifest{}, fmt.Errorf("%s exists: choose another name or give --force", out)
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".partial-")
	if err != nil {
		return backup.Manifest{}, fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriterSize(tmp, 1<<20)
	m, err := backup.Write(ctx, w, c, rs...)
	if err == nil {
		err = errors.Join(w.Flush(), tmp.Sync())
	}
	if err := errors.Join(err, tmp.Close()); err != nil {
		return backup.Manifest{}, err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return backup.Manifest{}, fmt.Errorf("backup: %w", err)
	}
	return m, nil
}

// backupRecipients builds the age recipients: public keys when given,
// otherwise a passphrase (scrypt).
func backupRecipients(e env, keys multi, keysFile, passFile string) ([]age.Recipient, error) {
	var rs []age.Recipient
	for _, k := range keys {
		parsed, err := age.ParseRecipients(strings.NewReader(k))
		if err != nil || len(parsed) == 0 {
			return nil, fmt.Errorf("--recipient %q is not an age public key (age1...): %v", k, err)
		}
		rs = append(rs, parsed...)
	}
	if keysFile != "" {
		f, err := os.Open(keysFile)
		if err != nil {
			return nil, fmt.Errorf("--recipients-file: %w", err)
		}
		parsed, err := age.ParseRecipients(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("--recipients-file %s: %w", keysFile, err)
		}
		rs = append(rs, parsed...)
	}
	if len(rs) > 0 {
		if passFile != "" {
			return nil, errors.New("give either a passphrase or age recipients, not both")
		}
		return rs, nil
	}
	p, err := readPassphrase(e, passFile, true)
	if err != nil {
		return nil, err
	}
	if len([]rune(p)) < minPassphrase {
		return nil, fmt.Errorf("the passphrase has %d characters; a backup passphrase needs at least %d", len([]rune(p)), minPassphrase)
	}
	r, err := age.NewScryptRecipient(p)
	if err != nil {
		return nil, fmt.Errorf("passphrase: %w", err)
	}
	return []age.Recipient{r}, nil
}

// readPassphrase reads a passphrase from a file (- for stdin), from the
// terminal (asking twice when confirm is set), or from the first line of
// stdin when that is not a terminal.
func readPassphrase(e env, file string, confirm bool) (string, error) {
	switch {
	case file == "-":
		return firstLine(e.stdin, "stdin")
	case file != "":
		f, err := os.Open(file)
		if err != nil {
			return "", fmt.Errorf("--passphrase-file: %w", err)
		}
		defer f.Close()
		return firstLine(f, file)
	}
	in, ok := e.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return firstLine(e.stdin, "stdin")
	}
	ask := func(prompt string) (string, error) {
		fmt.Fprint(e.stderr, prompt)
		b, err := term.ReadPassword(int(in.Fd()))
		fmt.Fprintln(e.stderr)
		return string(b), err
	}
	line, err := ask("Backup passphrase: ")
	if err != nil {
		return "", fmt.Errorf("read passphrase: %w", err)
	}
	if confirm {
		again, err := ask("Again: ")
		if err != nil {
			return "", fmt.Errorf("read passphrase: %w", err)
		}
		if again != line {
			return "", errors.New("the two passphrases differ")
		}
	}
	return line, nil
}

func firstLine(r io.Reader, name string) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read passphrase from %s: %w", name, err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("no passphrase in %s (give --passphrase-file FILE, or type it at a terminal)", name)
	}
	return line, nil
}

// runRestore installs a backup into a data directory the server is not
// running on.
func runRestore(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var c common
	c.register(fs)
	passFile := fs.String("passphrase-file", "", "read the passphrase from `file` (- for stdin); default: ask")
	idFile := fs.String("identity", "", "decrypt with the age identities (secret keys) in `file`")
	keyFile := fs.String("data-key-file", "", "the data key, for a backup taken without it (default: data_key_file)")
	force := fs.Bool("force", false, "restore into a data directory that is not empty (what it replaces is moved aside)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("restore takes one argument, the backup FILE\n" + backupUsage)
	}
	cfg, err := c.load(e, nil)
	if err != nil {
		return err
	}
	if *keyFile == "" {
		*keyFile = cfg.DataKeyFile
	}
	if conn, err := net.DialTimeout("unix", cfg.ControlSocketPath(), time.Second); err == nil {
		conn.Close()
		return fmt.Errorf("a server is running on %s (its control socket answers): stop it first (systemctl stop veilig)", cfg.DataDir)
	}
	in, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer in.Close()
	ids, err := restoreIdentities(e, *idFile, *passFile)
	if err != nil {
		return err
	}
	res, err := backup.Restore(ctx, bufio.NewReaderSize(in, 1<<20), backup.RestoreOptions{
		Identities: ids, DataDir: cfg.DataDir, Force: *force, KeyFile: *keyFile, Now: time.Now(),
	})
	if err != nil {
		if errors.Is(err, datakey.ErrWrongKey) || errors.Is(err, backup.ErrNoKey) {
			return err
		}
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	m := res.Manifest
	fmt.Fprintf(e.stdout, "Restored the backup taken %s (Veilig %s) into %s.\n",
		m.Created.Local().Format(time.DateTime), m.VeiligVersion, cfg.DataDir)
	if res.Replaced != "" {
		fmt.Fprintf(e.stdout, "What it replaced was moved to %s.\n", res.Replaced)
	}
	if res.KeyPath == *keyFile && *keyFile != "" {
		fmt.Fprintf(e.stdout, "Data key %s stays in %s: start the server with data_key_file: %s (or the systemd credential %s).\n",
			m.DataKeyID, res.KeyPath, res.KeyPath, app.DataKeyCredential)
	} else {
		fmt.Fprintf(e.stdout, "Data key %s is in %s.\n", m.DataKeyID, res.KeyPath)
	}
	return nil
}

func restoreIdentities(e env, idFile, passFile string) ([]age.Identity, error) {
	if idFile != "" {
		if passFile != "" {
			return nil, errors.New("give either --identity or --passphrase-file, not both")
		}
		f, err := os.Open(idFile)
		if err != nil {
			return nil, fmt.Errorf("--identity: %w", err)
		}
		defer f.Close()
		ids, err := age.ParseIdentities(f)
		if err != nil {
			return nil, fmt.Errorf("--identity %s: %w", idFile, err)
		}
		return ids, nil
	}
	p, err := readPassphrase(e, passFile, false)
	if err != nil {
		return nil, err
	}
	id, err := age.NewScryptIdentity(p)
	if err != nil {
		return nil, fmt.Errorf("passphrase: %w", err)
	}
	return []age.Identity{id}, nil
}
