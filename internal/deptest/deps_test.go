// Package deptest enforces the direction of imports that DESIGN.md
// describes: every package has a layer, and a package may import only
// packages of lower layers (and its own subpackages' layer). A new package
// must be given a layer here, so its place in the design is a decision,
// not an accident.
package deptest

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/veilig/veilig/"

// layers, lowest first. Packages on one line are peers and do not import
// each other unless listed in peersOK.
var layers = [][]string{
	{"internal/lifecycle"},
	{"internal/throttle", "internal/datakey", "internal/auth", "internal/config", "internal/tlsconf", "internal/auditlog",
		"internal/store", "internal/policy/ipban", "internal/policy/lockout", "internal/policy/ratelimit", "internal/policy/scanner",
		"internal/sipedge/sanity", "internal/media", "internal/admin/authn"},
	{"internal/policy", "internal/store/sqlite", "internal/store/storetest", "internal/store/feed", "internal/accounts"},
	{"internal/events"},
	{"internal/sipedge", "internal/tollfraud", "internal/retention", "internal/backup"},
	{"internal/registrar", "internal/trunk", "internal/defence"},
	{"internal/call"},
	{"internal/service"},
	{"internal/control", "internal/admin", "internal/metrics", "internal/process"},
	{"internal/app"},
	{"internal/cli"},
	{"cmd/veilig"},
	// Test and benchmark helpers sit above the product: they may use any
	// of it, and nothing in it may use them. The shared helpers (a SIP test
	// user agent, a browser) sit below the tests and benchmarks that use them.
	{"internal/testkit"},
	{"bench", "test"},
}

// peersOK lists imports between packages of one layer that are allowed.
var peersOK = map[string][]string{
	"internal/tollfraud": {},
	"internal/trunk":     {},
}

// pure packages decide without doing I/O: no sockets, no database, no
// files, no SIP stack.
var pure = map[string][]string{
	"internal/policy": {"net", "net/http", "os", "os/exec", "database/sql", "github.com/emiago/sipgo/"},
}

func layerOf(pkg string) (int, string, bool) {
	best, bestName := -1, ""
	for i, l := range layers {
		for _, p := range l {
			if (pkg == p || strings.HasPrefix(pkg, p+"/")) && len(p) > len(bestName) {
				best, bestName = i, p
			}
		}
	}
	return best, bestName, best >= 0
}

type listed struct {
	ImportPath string
	Imports    []string
}

func TestImportDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", "github.com/veilig/veilig/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	n := 0
	for dec.More() {
		var p listed
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkg := strings.TrimPrefix(p.ImportPath, module)
		if pkg == "internal/deptest" {
			continue
		}
		n++
		li, lname, ok := layerOf(pkg)
		if !ok {
			t.Errorf("%s has no layer: add it to deptest's layers where DESIGN.md puts it", pkg)
			continue
		}
		for _, imp := range p.Imports {
			for root, banned := range pure {
				if pkg == root || strings.HasPrefix(pkg, root+"/") {
					for _, b := range banned {
						if imp == b || (strings.HasSuffix(b, "/") && strings.HasPrefix(imp, b)) {
							t.Errorf("%s is the pure decision core and imports %s", pkg, imp)
						}
					}
				}
			}
			if !strings.HasPrefix(imp, module) {
				continue
			}
			dep := strings.TrimPrefix(imp, module)
			di, dname, ok := layerOf(dep)
			if !ok {
				continue // reported as its own package
			}
			switch {
			case di < li:
			case dname == lname: // within one package tree
			case di == li && contains(peersOK[lname], dname):
			default:
				t.Errorf("%s (layer %d, %s) imports %s (layer %d, %s): imports must flow down", pkg, li, lname, dep, di, dname)
			}
		}
	}
	if n < 20 {
		t.Fatalf("only %d packages listed", n)
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}
