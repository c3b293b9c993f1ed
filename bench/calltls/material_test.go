package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The expected lines are what run.sh's make_users (perl) writes for
// user0007 in bench.test.
func TestUsersAreTheHarnessUsers(t *testing.T) {
	dir := t.TempDir()
	if err := writeUsers(dir, "bench.test", subscribers(10)); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"users.csv":       "user0007;bench.test;[authentication username=user0007 password=Vb-00e0d7a8b456eb94];user0008\n",
		"users.txt":       "user0007:Vb-00e0d7a8b456eb94\n",
		"subscribers.sql": "VALUES ('user0007','bench.test','','" + md5hex("user0007:bench.test:Vb-00e0d7a8b456eb94") + "',",
	}
	for name, line := range want {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), line) {
			t.Errorf("%s lacks %q:\n%s", name, line, b)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "users.csv"))
	if !strings.HasPrefix(string(b), "SEQUENTIAL\n") || !strings.HasSuffix(string(b), "];user0000\n") {
		t.Errorf("users.csv must start SEQUENTIAL and wrap the last caller to user0000:\n%s", b)
	}
}

func TestParseTargets(t *testing.T) {
	got, err := parseTargets("kamailio,veilig,veilig-before=/tmp/x/veilig", "/bin/veilig")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].kind != "kamailio" || got[1].bin != "/bin/veilig" ||
		got[2].label != "veilig-before" || got[2].kind != "veilig" || got[2].bin != "/tmp/x/veilig" {
		t.Errorf("parsed %+v %+v %+v", got[0], got[1], got[2])
	}
	for _, bad := range []string{"", "opensips", "kamailio,kamailio", "kamailio=/usr/sbin/kamailio", "=x"} {
		if _, err := parseTargets(bad, ""); err == nil {
			t.Errorf("parseTargets(%q): no error", bad)
		}
	}
}
