package test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const backupPassphrase = "backup passphrase, long enough 7!"

// TestBackupUnderRegistrationLoad: while 200 agents register over UDP at
// 200/s (bench/flood/agents) and the test keeps adding extensions and bans
// through the CLI, `veilig backup --with-key` writes a passphrase-encrypted
// snapshot. It restores into a fresh data dir, and a server started there
// holds every extension, ban and call record that existed when the backup
// began, and a restored extension's secret still registers (so the sealed
// HA1 values open with the restored key). A wrong passphrase is refused
// with a clear message and leaves nothing behind.
func TestBackupUnderRegistrationLoad(t *testing.T) {
	agents := buildAgents(t)
	srv := startServer(t, serverOptions{UDP: true, Domain: "backup.test"})
	users := writeAgentUsers(t, 200)
	if out, code := srv.cli(t, "", "ext", "import", users); code != 0 {
		t.Fatalf("ext import: %d\n%s", code, out)
	}
	secret := srv.addExtension(t, "1001")
	srv.addExtension(t, "1002")
	if out, code := srv.cli(t, "", "ban", "add", "203.0.113.7", "--for", "24h", "--reason", "before the backup"); code != 0 {
		t.Fatalf("ban add: %d\n%s", code, out)
	}
	// A call record: 1001 calls 1002, which is offline (480).
	a := newUA(t, srv, "127.0.0.71", "1001", secret)
	c := a.invite("1002", srtpOffer(a.ip, "sendrecv"))
	requireStatus(t, "INVITE to an offline extension", c.waitAnswer(5*time.Second), 480)
	srv.waitRecordFor(t, 10*time.Second, c.callID)

	ag := startProc(t, procSpec{name: "agents", timeout: 40 * time.Second, args: []string{
		agents, "-server", srv.udpAddr, "-local", "127.0.0.72", "-users", users,
		"-domain", srv.domain, "-rate", "200", "-duration", "8s", "-sockets", "16",
	}})

	// Writers that go on during the backup: extensions and bans added one
	// by one, each noted with the time its command returned.
	type added struct {
		what string
		done time.Time
	}
	var (
		mu   sync.Mutex
		adds []added
		stop = make(chan struct{})
		wg   sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 300; i++ { // bounded; stopped after the backup
			select {
			case <-stop:
				return
			default:
			}
			num := fmt.Sprint(3000 + i)
			if _, code := srv.cli(t, "", "ext", "add", num); code == 0 {
				mu.Lock()
				adds = append(adds, added{"ext " + num, time.Now()})
				mu.Unlock()
			}
			ip := fmt.Sprintf("198.51.%d.%d", 100+i/200, 10+i%200)
			if _, code := srv.cli(t, "", "ban", "add", ip, "--for", "2h"); code == 0 {
				mu.Lock()
				adds = append(adds, added{"ban " + ip, time.Now()})
				mu.Unlock()
			}
		}
	}()
	time.Sleep(3 * time.Second) // load and writers are running

	stateBefore := serverState(t, srv)
	backupFile := filepath.Join(artifactDir(t), "veilig-backup.age")
	passFile := filepath.Join(artifactDir(t), "passphrase")
	writeFile(t, passFile, backupPassphrase+"\n")
	began := time.Now()
	out, code := srv.cli(t, "", "backup", backupFile, "--with-key", "--passphrase-file", passFile)
	if code != 0 {
		t.Fatalf("veilig backup exited %d:\n%s", code, out)
	}
	t.Logf("backup: %s", strings.TrimSpace(out))
	if !strings.Contains(out, "includes the data key") {
		t.Errorf("backup --with-key does not say it includes the key:\n%s", out)
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	if ok, code := ag.Wait(40 * time.Second); !ok || code != 0 {
		t.Fatalf("agents failed (exited %v, code %d):\n%s", ok, code, ag.Output())
	}
	var r agentsResult
	if err := json.Unmarshal([]byte(strings.TrimSpace(lastLine(ag.stdout.String()))), &r); err != nil {
		t.Fatalf("agents output: %v\n%s", err, ag.Output())
	}
	t.Logf("registration load during the backup: %d/%d ok, p99 %.2f ms", r.OK, r.Offered, r.P99ms)
	if r.OK < r.Offered*99/100 {
		t.Errorf("registrations during the backup: %d of %d succeeded", r.OK, r.Offered)
	}
	mu.Lock()
	var mustHave []string
	for _, a := range adds {
		if a.done.Before(began) {
			mustHave = append(mustHave, a.what)
		}
	}
	mu.Unlock()
	if len(mustHave) < 4 {
		t.Fatalf("only %d concurrent additions finished before the backup began; the test proves nothing", len(mustHave))
	}

	// A wrong passphrase: a clear error, no data dir left behind.
	wrongDir := filepath.Join(artifactDir(t), "wrong")
	out, code = runVeilig(t, "backup.wrong\n"+strings.Repeat("x", 12)+"\n", "restore", backupFile, "--data-dir", wrongDir)
	if code == 0 || !strings.Contains(out, "wrong passphrase") {
		t.Errorf("restore with a wrong passphrase: exit %d, want an error saying 'wrong passphrase':\n%s", code, out)
	}
	if _, err := os.Stat(wrongDir); err == nil {
		t.Errorf("a failed restore left %s", wrongDir)
	}

	restored := filepath.Join(artifactDir(t), "restored", "data")
	os.MkdirAll(filepath.Dir(restored), 0o700)
	out, code = runVeilig(t, "", "restore", backupFile, "--data-dir", restored, "--passphrase-file", passFile)
	if code != 0 {
		t.Fatalf("veilig restore exited %d:\n%s", code, out)
	}
	t.Logf("restore: %s", strings.TrimSpace(out))
	srv2 := startServerOn(t, "restored", restored, serverOptions{UDP: true, Domain: "backup.test"}, nil)
	after := serverState(t, srv2)

	for _, ext := range stateBefore.exts {
		if !slices.Contains(after.exts, ext) {
			t.Errorf("extension %s existed before the backup and is missing after the restore", ext)
		}
	}
	for _, ban := range stateBefore.bans {
		if !slices.Contains(after.bans, ban) {
			t.Errorf("ban of %s existed before the backup and is missing after the restore", ban)
		}
	}
	for _, id := range stateBefore.calls {
		if !slices.Contains(after.calls, id) {
			t.Errorf("call record %s existed before the backup and is missing after the restore", id)
		}
	}
	for _, what := range mustHave {
		kind, v, _ := strings.Cut(what, " ")
		if list := map[string][]string{"ext": after.exts, "ban": after.bans}[kind]; !slices.Contains(list, v) {
			t.Errorf("%s was added before the backup began (while it ran under load) and is missing after the restore", what)
		}
	}
	t.Logf("before the backup: %d extensions, %d bans, %d call records; %d additions finished before it began, %d after; after the restore: %d, %d, %d",
		len(stateBefore.exts), len(stateBefore.bans), len(stateBefore.calls), len(mustHave), len(adds)-len(mustHave),
		len(after.exts), len(after.bans), len(after.calls))

	// The restored key opens the restored secrets: 1001 registers with the
	// secret it was given before the backup.
	conn := dialSIPTLS(t, "127.0.0.73", srv2.tlsAddr)
	if _, final := conn.register(t, srv2.domain, "1001", secret, "SHA-256"); final.status() != 200 {
		t.Errorf("1001 on the restored server: REGISTER got %q, want 200", final.start)
	}
}

// TestBackupWithoutKey: a backup taken without --with-key, encrypted to an
// age recipient made by Debian's age-keygen, decrypts with Debian's age
// and holds no copy of the data key; restored with --identity and
// --data-key-file, it runs on a server that gets the key as a systemd
// credential ($CREDENTIALS_DIRECTORY/datakey), the data dir holding no key.
func TestBackupWithoutKey(t *testing.T) {
	requireTools(t, "age", "age-keygen")
	srv := startServer(t, serverOptions{Domain: "backup.test"})
	secret := srv.addExtension(t, "1001")
	dir := artifactDir(t)
	idFile := filepath.Join(dir, "backup-identity.txt")
	if out, code := runProc(t, procSpec{name: "age-keygen", args: []string{"age-keygen", "-o", idFile}, timeout: 10 * time.Second}); code != 0 {
		t.Fatalf("age-keygen: %d\n%s", code, out)
	}
	pub, code := runProc(t, procSpec{name: "age-keygen-y", args: []string{"age-keygen", "-y", idFile}, timeout: 10 * time.Second})
	pub = strings.TrimSpace(pub)
	if code != 0 || !strings.HasPrefix(pub, "age1") {
		t.Fatalf("age-keygen -y: %d %q", code, pub)
	}
	backupFile := filepath.Join(dir, "nokey.age")
	out, code := srv.cli(t, "", "backup", backupFile, "--recipient", pub)
	if code != 0 || !strings.Contains(out, "does not include the data key") {
		t.Fatalf("veilig backup --recipient: exit %d:\n%s", code, out)
	}

	plainTar := filepath.Join(dir, "nokey.tar.gz")
	if out, code := runProc(t, procSpec{name: "age-decrypt", timeout: 20 * time.Second,
		args: []string{"age", "--decrypt", "-i", idFile, "-o", plainTar, backupFile}}); code != 0 {
		t.Fatalf("Debian's age cannot decrypt the backup: %d\n%s", code, out)
	}
	list, code := runProc(t, procSpec{name: "tar-list", args: []string{"tar", "-tzf", plainTar}, timeout: 20 * time.Second})
	if code != 0 || !strings.Contains(list, "veilig.db") || !strings.Contains(list, "manifest.json") || !strings.Contains(list, "tls/ca.crt") {
		t.Fatalf("tar -tzf of the decrypted backup: %d\n%s", code, list)
	}
	if strings.Contains(list, "data.key") {
		t.Errorf("a backup without --with-key lists a data.key:\n%s", list)
	}
	rawKey, err := os.ReadFile(filepath.Join(srv.dataDir, "data.key"))
	if err != nil || len(rawKey) != 32 {
		t.Fatalf("read the server's data key: %v", err)
	}
	if bytes.Contains(gunzipFile(t, plainTar), rawKey) {
		t.Fatal("the decrypted backup taken without --with-key contains the data key's bytes")
	}

	// The key goes where only the service reads it.
	creds := filepath.Join(dir, "credentials")
	os.MkdirAll(creds, 0o700)
	writeFile(t, filepath.Join(creds, "datakey"), string(rawKey))
	restored := filepath.Join(dir, "restored")
	out, code = runVeilig(t, "", "restore", backupFile, "--data-dir", restored, "--identity", idFile)
	if code == 0 || !strings.Contains(out, "--data-key-file") {
		t.Errorf("restore of a keyless backup without a key: exit %d, want an error naming --data-key-file:\n%s", code, out)
	}
	out, code = runVeilig(t, "", "restore", backupFile, "--data-dir", restored, "--identity", idFile,
		"--data-key-file", filepath.Join(creds, "datakey"))
	if code != 0 {
		t.Fatalf("restore --data-key-file: %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(restored, "data.key")); err == nil {
		t.Fatal("restore copied the key into the data dir")
	}
	srv2 := startServerOn(t, "restored", restored, serverOptions{Domain: "backup.test"}, []string{"CREDENTIALS_DIRECTORY=" + creds})
	conn := dialSIPTLS(t, "127.0.0.74", srv2.tlsAddr)
	if _, final := conn.register(t, srv2.domain, "1001", secret, "SHA-256"); final.status() != 200 {
		t.Errorf("1001 on the server restored without the key in its data dir: REGISTER got %q, want 200", final.start)
	}
	if _, err := os.Stat(filepath.Join(restored, "data.key")); err == nil {
		t.Error("the server created a data key in the data dir although it got one as a credential")
	}
}

// stateSnapshot is what the store holds, as the CLI lists it.
type stateSnapshot struct {
	exts, bans, calls []string
}

func serverState(t *testing.T, s *server) stateSnapshot {
	t.Helper()
	var st stateSnapshot
	out, code := s.cli(t, "", "ext", "list")
	if code != 0 {
		t.Fatalf("ext list: %d\n%s", code, out)
	}
	st.exts = firstColumn(out)
	out, code = s.cli(t, "", "ban", "list")
	if code != 0 {
		t.Fatalf("ban list: %d\n%s", code, out)
	}
	st.bans = firstColumn(out)
	out, code = s.cli(t, "", "calls", "--json", "--limit", "1000")
	if code != 0 {
		t.Fatalf("calls --json: %d\n%s", code, out)
	}
	var recs []idCallRecord
	if i := strings.Index(out, "["); i >= 0 {
		if err := json.NewDecoder(strings.NewReader(out[i:])).Decode(&recs); err != nil {
			t.Fatalf("calls --json: %v\n%s", err, out)
		}
	}
	for _, r := range recs {
		st.calls = append(st.calls, r.ID)
	}
	if len(st.exts) == 0 || len(st.calls) == 0 {
		t.Fatalf("server state has no extensions or no call records: %+v", st)
	}
	return st
}

// firstColumn returns the first field of each line of a table after its
// header line.
func firstColumn(out string) []string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var col []string
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) > 0 {
			col = append(col, f[0])
		}
	}
	return col
}

// runVeilig runs the veilig binary with no config (bounded).
func runVeilig(t *testing.T, stdin string, args ...string) (string, int) {
	t.Helper()
	return runProc(t, procSpec{
		name:    "veilig-" + args[0] + "-" + time.Now().Format("150405.000"),
		args:    append([]string{requireVeilig(t)}, args...),
		stdin:   strings.NewReader(stdin),
		timeout: 60 * time.Second,
		dropEnv: "VEILIG_",
	})
}

// startServerOn starts a second server in the same test, on an existing
// data dir (such as a restored one), with its own config and ports.
func startServerOn(t *testing.T, name, dataDir string, opts serverOptions, env []string) *server {
	t.Helper()
	if opts.IP == "" {
		opts.IP = "127.0.0.1"
	}
	if opts.Domain == "" {
		opts.Domain = opts.IP
	}
	dir := filepath.Join(artifactDir(t), name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, bin: requireVeilig(t), dir: dir, domain: opts.Domain, dataDir: dataDir}
	s.eventsPath = filepath.Join(dataDir, "events.jsonl")
	s.configPath = filepath.Join(dir, "veilig.yaml")
	s.tlsAddr = hostPort(opts.IP, freePort(t, "tcp", opts.IP))
	if opts.UDP {
		s.udpAddr = hostPort(opts.IP, freePort(t, "udp", opts.IP))
	}
	s.writeConfig(t, opts)
	s.proc = startProc(t, procSpec{
		name:    "veilig-" + name,
		args:    []string{s.bin, "serve", "--config", s.configPath},
		env:     env,
		timeout: 10 * time.Minute,
		stop:    syscall.SIGTERM,
		dropEnv: "VEILIG_",
	})
	s.waitReady(t, 30*time.Second)
	return s
}

func gunzipFile(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
