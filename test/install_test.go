package test

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestInstallFollowsREADME runs the README's install steps (the block
// between the install-steps markers) into a temporary root: `make install`
// with DESTDIR, `systemd-sysusers` with --root; the systemctl steps are
// replaced by what systemd would do: create the state directory for the
// service's user, then start the unit's ExecStart command line, parsed from
// the installed unit with its paths rewritten into the root, as the
// veilig user without privileges (setpriv: no new privileges, no
// capabilities), until "Veilig is ready". Then the CLI works as the README
// says (as the veilig user), SIGTERM stops the server cleanly, a second
// install keeps the edited config, and uninstall leaves config and data.
func TestInstallFollowsREADME(t *testing.T) {
	requireTools(t, "make", "systemd-sysusers", "systemd-analyze", "setpriv")
	root := installRoot(t)
	steps := readmeInstallSteps(t)
	started := false
	for _, step := range steps {
		f := strings.Fields(strings.TrimPrefix(step, "sudo "))
		switch {
		case f[0] == "make" && len(f) > 1 && f[1] == "install":
			runMake(t, root, f[1:]...)
		case f[0] == "systemd-sysusers":
			if out, code := runProc(t, procSpec{name: "sysusers", timeout: time.Minute,
				args: append([]string{"systemd-sysusers", "--root=" + root}, f[1:]...)}); code != 0 {
				t.Fatalf("%s: exit %d\n%s", step, code, out)
			}
		case f[0] == "systemctl" && len(f) == 2 && f[1] == "daemon-reload":
		case f[0] == "systemctl" && slices.Equal(f[1:], []string{"enable", "--now", "veilig"}):
			started = true
		default:
			t.Fatalf("the README's install section has a step this test cannot follow: %q (teach test/install_test.go)", step)
		}
	}
	if !started {
		t.Fatalf("the README's install steps never start the service: %q", steps)
	}
	unitPath := filepath.Join(root, "usr/local/lib/systemd/system/veilig.service")
	for _, p := range []string{"usr/local/bin/veilig", "usr/local/lib/sysusers.d/veilig.conf", "etc/veilig/veilig.yaml", "usr/local/share/doc/veilig/softphones.md"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("make install did not install /%s: %v", p, err)
		}
	}
	unit := parseUnit(t, unitPath)
	checkHardening(t, unit)
	checkUnitWithSystemd(t, root, unitPath, "/usr/local/bin/veilig")

	srv := startUnit(t, root, unit, "install")
	// The CLI as the README says: as the veilig user, with the installed config.
	out, code := runAsVeilig(t, root, srv, "ext", "add", "1001", "--name", "Agent Anna", "--config", "/etc/veilig/veilig.yaml")
	if code != 0 || !strings.Contains(out, "SIP secret for 1001") {
		t.Fatalf("veilig ext add as the veilig user: exit %d\n%s", code, out)
	}
	srv.stop(t)

	// A second install keeps the configuration the admin edited.
	cfgPath := filepath.Join(root, "etc/veilig/veilig.yaml")
	edited := "# edited by the admin\n" + readString(t, cfgPath)
	writeFile(t, cfgPath, edited)
	runMake(t, root, "install")
	if readString(t, cfgPath) != edited {
		t.Error("a second make install replaced the edited /etc/veilig/veilig.yaml")
	}
	runMake(t, root, "uninstall")
	if _, err := os.Stat(filepath.Join(root, "usr/local/bin/veilig")); err == nil {
		t.Error("make uninstall left the binary")
	}
	for _, keep := range []string{"etc/veilig/veilig.yaml", "var/lib/veilig/veilig.db"} {
		if _, err := os.Stat(filepath.Join(root, keep)); err != nil {
			t.Errorf("make uninstall removed /%s: %v", keep, err)
		}
	}
}

// TestDebPackage builds the package with `make deb` (nfpm) and checks it
// with dpkg-deb: its files, the config marked as a conffile, maintainer
// scripts that parse; then it starts the unit from the unpacked package.
func TestDebPackage(t *testing.T) {
	requireTools(t, "make", "dpkg-deb", "systemd-sysusers", "setpriv")
	out, code := runProc(t, procSpec{name: "make-deb", args: []string{"make", "-C", repoRoot(t), "deb"}, timeout: 8 * time.Minute})
	if code != 0 {
		t.Fatalf("make deb: exit %d\n%s", code, out)
	}
	m := regexp.MustCompile(`created package: (\S+\.deb)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("make deb printed no 'created package:' line:\n%s", out)
	}
	deb := filepath.Join(repoRoot(t), m[1])
	list, code := runProc(t, procSpec{name: "dpkg-deb-c", args: []string{"dpkg-deb", "-c", deb}, timeout: time.Minute})
	if code != 0 {
		t.Fatalf("dpkg-deb -c: %d\n%s", code, list)
	}
	for _, want := range []string{
		"-rwxr-xr-x root/root .* ./usr/bin/veilig",
		"-rw-r--r-- root/root .* ./usr/lib/systemd/system/veilig.service",
		"-rw-r--r-- root/root .* ./usr/lib/sysusers.d/veilig.conf",
		"-rw-r--r-- root/root .* ./etc/veilig/veilig.yaml",
		"./usr/share/doc/veilig/softphones.md",
	} {
		if !regexp.MustCompile(want).MatchString(list) {
			t.Errorf("dpkg-deb -c has no line matching %q:\n%s", want, list)
		}
	}
	root := installRoot(t)
	ctl := filepath.Join(artifactDir(t), "control")
	for _, args := range [][]string{{"dpkg-deb", "-x", deb, root}, {"dpkg-deb", "-e", deb, ctl}} {
		if out, code := runProc(t, procSpec{name: args[1], args: args, timeout: time.Minute}); code != 0 {
			t.Fatalf("%v: %d\n%s", args, code, out)
		}
	}
	if !strings.Contains(readString(t, filepath.Join(ctl, "conffiles")), "/etc/veilig/veilig.yaml") {
		t.Error("/etc/veilig/veilig.yaml is not a conffile: an upgrade would replace the admin's config")
	}
	for _, s := range []string{"postinst", "prerm"} {
		if out, code := runProc(t, procSpec{name: "sh-n-" + s, args: []string{"sh", "-n", filepath.Join(ctl, s)}, timeout: time.Minute}); code != 0 {
			t.Errorf("%s does not parse: %s", s, out)
		}
	}
	if out, code := runProc(t, procSpec{name: "sysusers", timeout: time.Minute,
		args: []string{"systemd-sysusers", "--root=" + root}}); code != 0 {
		t.Fatalf("systemd-sysusers on the package's sysusers.d: %d\n%s", code, out)
	}
	unit := parseUnit(t, filepath.Join(root, "usr/lib/systemd/system/veilig.service"))
	checkHardening(t, unit)
	startUnit(t, root, unit, "deb").stop(t)
}

// installRoot is a temporary root the unprivileged veilig user can
// traverse (t.TempDir makes 0700 directories).
func installRoot(t *testing.T) string {
	t.Helper()
	root := filepath.Join(artifactDir(t), "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	dirs := []string{root, artifactDir(t)}
	if os.Getenv("E2E_ARTIFACTS") == "" {
		dirs = append(dirs, filepath.Dir(artifactDir(t))) // t.TempDir's parent, also 0700
	}
	for _, d := range dirs {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func runMake(t *testing.T, root string, args ...string) {
	t.Helper()
	argv := append([]string{"make", "-C", repoRoot(t)}, args...)
	argv = append(argv, "DESTDIR="+root)
	if out, code := runProc(t, procSpec{name: "make-" + args[0], args: argv, timeout: 5 * time.Minute}); code != 0 {
		t.Fatalf("%s: exit %d\n%s", strings.Join(argv, " "), code, out)
	}
}

// readmeInstallSteps returns the command lines of the README's marked
// install block (comments and blank lines dropped).
func readmeInstallSteps(t *testing.T) []string {
	t.Helper()
	readme := readString(t, filepath.Join(repoRoot(t), "README.md"))
	start := strings.Index(readme, "<!-- install-steps")
	end := strings.Index(readme, "<!-- /install-steps -->")
	if start < 0 || end < start {
		t.Fatal("README.md has no <!-- install-steps --> ... <!-- /install-steps --> block")
	}
	var steps []string
	for _, l := range strings.Split(readme[start:end], "\n")[1:] {
		l = strings.TrimSpace(l)
		if c := strings.Index(l, "#"); c >= 0 {
			l = strings.TrimSpace(l[:c])
		}
		if l == "" || strings.HasPrefix(l, "```") {
			continue
		}
		steps = append(steps, l)
	}
	if len(steps) == 0 {
		t.Fatal("the README's install block is empty")
	}
	return steps
}

// unitFile is a parsed systemd unit: key -> values in order (a key may
// repeat, and an empty assignment resets it, as in systemd).
type unitFile map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' || l[0] == ';' {
			continue
		}
		if strings.HasPrefix(l, "[") {
			section = strings.Trim(l, "[]")
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("%s: not key=value: %q", path, l)
		}
		key := section + "." + strings.TrimSpace(k)
		if v = strings.TrimSpace(v); v == "" {
			u[key] = []string{""}
		} else {
			u[key] = append(u[key], v)
		}
	}
	return u
}

func (u unitFile) get(key string) string { return strings.Join(u["Service."+key], " ") }

// checkHardening requires the settings the README promises.
func checkHardening(t *testing.T, u unitFile) {
	t.Helper()
	for key, want := range map[string]string{
		"User": "veilig", "Group": "veilig", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
		"ReadWritePaths": "/var/lib/veilig", "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
		"RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK", "CapabilityBoundingSet": "",
		"AmbientCapabilities": "", "StateDirectory": "veilig", "StateDirectoryMode": "0700", "UMask": "0077",
	} {
		if _, ok := u["Service."+key]; !ok {
			t.Errorf("the unit does not set %s", key)
		} else if got := u.get(key); got != want {
			t.Errorf("the unit sets %s=%q, want %q", key, got, want)
		}
	}
}

// checkUnitWithSystemd runs systemd's own checks on the unit: verify (with
// ExecStart pointed at the installed binary, since systemd checks it exists)
// and the offline security assessment, which must stay "OK" or better.
func checkUnitWithSystemd(t *testing.T, root, unitPath, bin string) {
	t.Helper()
	dir := filepath.Join(artifactDir(t), "unit-check")
	os.MkdirAll(dir, 0o755)
	text := strings.ReplaceAll(readString(t, unitPath), bin, filepath.Join(root, bin))
	writeFile(t, filepath.Join(dir, "veilig.service"), text)
	if out, code := runProc(t, procSpec{name: "systemd-analyze-verify", timeout: time.Minute,
		args: []string{"systemd-analyze", "verify", filepath.Join(dir, "veilig.service")}}); code != 0 || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify: exit %d\n%s", code, out)
	}
	out, code := runProc(t, procSpec{name: "systemd-analyze-security", timeout: time.Minute,
		args: []string{"systemd-analyze", "security", "--offline=yes", "--root=" + root, "--no-pager", unitPath}})
	m := regexp.MustCompile(`Overall exposure level for veilig.service: ([0-9.]+) (\S+)`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("systemd-analyze security: exit %d\n%s", code, out)
	}
	score, _ := strconv.ParseFloat(m[1], 64)
	t.Logf("systemd-analyze security: exposure %s %s", m[1], m[2])
	if score > 2.0 {
		t.Errorf("the unit's exposure level is %s (%s); it was 1.4 when the unit was written:\n%s", m[1], m[2], out)
	}
}

// unitServer is the unit's command running in a temporary root.
type unitServer struct {
	proc         *proc
	uid, gid     int
	env          []string
	dataDir      string
	workDir, bin string
	configInRoot string
}

// startUnit does what systemd does for the unit, inside root: creates the
// StateDirectory for User=, then runs ExecStart (paths rewritten into the
// root) in WorkingDirectory as that user with no new privileges and no
// capabilities. The installed config's data_dir and the listen address are
// pointed into the root through the environment, as a drop-in would.
func startUnit(t *testing.T, root string, u unitFile, name string) *unitServer {
	t.Helper()
	uid, gid := lookupUser(t, root, u.get("User"))
	state := filepath.Join(root, "var/lib", u.get("StateDirectory"))
	if err := os.MkdirAll(filepath.Dir(state), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(state, 0o700); err != nil && !os.IsExist(err) {
		t.Fatal(err)
	}
	if err := os.Chown(state, uid, gid); err != nil {
		t.Fatal(err)
	}
	argv := strings.Fields(u.get("ExecStart"))
	for i, a := range argv {
		if strings.HasPrefix(a, "/") {
			argv[i] = filepath.Join(root, a)
		}
	}
	if len(argv) < 2 || argv[1] != "serve" {
		t.Fatalf("ExecStart is not 'veilig serve ...': %q", u.get("ExecStart"))
	}
	wd := filepath.Join(root, u.get("WorkingDirectory"))
	if wd != state {
		t.Errorf("WorkingDirectory %s is not the StateDirectory", u.get("WorkingDirectory"))
	}
	s := &unitServer{uid: uid, gid: gid, dataDir: state, workDir: wd, bin: argv[0]}
	s.configInRoot = filepath.Join(root, "etc/veilig/veilig.yaml")
	tls := hostPort("127.0.0.1", freePort(t, "tcp", "127.0.0.1"))
	s.env = []string{"VEILIG_DATA_DIR=" + state, "VEILIG_SIP_TLS_LISTEN=" + tls, "VEILIG_SIP_DOMAIN=install.test"}
	s.proc = startProc(t, procSpec{
		name:    "unit-" + name,
		args:    append(setpriv(uid, gid), argv...),
		dir:     wd,
		env:     s.env,
		timeout: 5 * time.Minute,
		stop:    syscall.SIGTERM,
		dropEnv: "VEILIG_",
	})
	if !s.proc.waitOutput(serverReadyLine, 30*time.Second) {
		t.Fatalf("the unit's command did not print %q:\n%s", serverReadyLine, tail(s.proc.Output(), 40))
	}
	if !strings.Contains(s.proc.stdout.String(), "listening: sip+tls "+tls) {
		t.Errorf("the server does not listen on %s:\n%s", tls, s.proc.stdout.String())
	}
	// Everything it wrote is in its state directory, owned by its user,
	// closed to others.
	err := filepath.Walk(state, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if int(st.Uid) != uid {
			t.Errorf("%s is owned by uid %d, not the service's %d", p, st.Uid, uid)
		}
		if fi.Mode().Perm()&0o007 != 0 && fi.Mode()&os.ModeSocket == 0 && !strings.HasSuffix(p, ".crt") {
			t.Errorf("%s has mode %v, open to others", p, fi.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"veilig.db", "data.key", "tls/ca.crt"} {
		if _, err := os.Stat(filepath.Join(state, f)); err != nil {
			t.Errorf("the server did not create %s in its state directory: %v", f, err)
		}
	}
	return s
}

// setpriv runs a command as uid:gid with no supplementary groups, no new
// privileges and no capabilities (what User=, NoNewPrivileges= and an
// empty CapabilityBoundingSet= give the service).
func setpriv(uid, gid int) []string {
	return []string{"setpriv", "--reuid=" + strconv.Itoa(uid), "--regid=" + strconv.Itoa(gid), "--clear-groups",
		"--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--"}
}

// runAsVeilig runs the installed CLI as the service user, with the
// config path of the README mapped into the root.
func runAsVeilig(t *testing.T, root string, s *unitServer, args ...string) (string, int) {
	t.Helper()
	for i, a := range args {
		if a == "/etc/veilig/veilig.yaml" {
			args[i] = s.configInRoot
		}
	}
	return runProc(t, procSpec{
		name:    "veilig-as-veilig-" + args[0],
		args:    append(append(setpriv(s.uid, s.gid), s.bin), args...),
		dir:     s.workDir,
		env:     s.env,
		timeout: time.Minute,
		dropEnv: "VEILIG_",
	})
}

func (s *unitServer) stop(t *testing.T) {
	t.Helper()
	_ = s.proc.cmd.Process.Signal(syscall.SIGTERM)
	exited, code := s.proc.Wait(15 * time.Second)
	if !exited || code != 0 {
		t.Errorf("the unit's command did not exit 0 within 15 s of SIGTERM (exited %v, code %d):\n%s", exited, code, tail(s.proc.Output(), 20))
	}
}

// lookupUser reads name's uid and gid from the root's /etc/passwd (made by
// systemd-sysusers --root).
func lookupUser(t *testing.T, root, name string) (int, int) {
	t.Helper()
	for _, l := range strings.Split(readString(t, filepath.Join(root, "etc/passwd")), "\n") {
		f := strings.Split(l, ":")
		if len(f) >= 4 && f[0] == name {
			uid, err1 := strconv.Atoi(f[2])
			gid, err2 := strconv.Atoi(f[3])
			if err1 != nil || err2 != nil || uid == 0 {
				t.Fatalf("bad passwd entry %q", l)
			}
			return uid, gid
		}
	}
	t.Fatalf("no user %q in %s/etc/passwd", name, root)
	return 0, 0
}

// repoRoot is the module root (tests run in test/).
func repoRoot(t *testing.T) string {
	t.Helper()
	abs, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
