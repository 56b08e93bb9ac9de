package layering

import (
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/id4me/id4me-registry/"

// rules says, for each package pattern (a path below the module, "/..." for a subtree), the
// module packages it must not depend on, directly or through others.
var rules = []struct {
	pkg       string
	forbidden []string
	why       string
}{
	{"id4me", []string{"..."}, "a leaf: protocol facts shared by every side"},
	{"acme", []string{"..."}, "a leaf: ACME dns-01 computations"},
	{"dnsverify", []string{"..."}, "a leaf: authoritative DNS checks"},
	{"internal/publicaddr", []string{"..."}, "a leaf: the list of non-public addresses"},
	{"agent/...", []string{"registry/...", "authority/...", "server/...", "sqlstore/...", "migrations/...", "cmd/..."},
		"the agent side is apart from the server side: agents import it alone"},
	{"cmd/id4me-agent", []string{"registry/...", "authority/...", "server/...", "sqlstore/...", "migrations/..."},
		"the agent's program is the agent side alone, without the registry's server code"},
	{"internal/cmdline", []string{"registry/...", "authority/...", "server/...", "sqlstore/...", "migrations/...", "agent/..."},
		"what the programs share on their command lines knows neither side"},
	{"registry", []string{"authority/...", "server/...", "sqlstore/...", "migrations/...", "agent/...", "cmd/..."},
		"the domain knows no transport, store or authority: they know it"},
	{"authority", []string{"server/...", "sqlstore/...", "migrations/...", "agent/...", "cmd/..."},
		"the authority reads the registry through its Resolver interface and keeps state through its Store interface"},
	{"sqlstore", []string{"server/...", "agent/...", "cmd/..."}, "the store implements the domain's interfaces and knows no transport"},
	{"server", []string{"authority/...", "sqlstore/...", "migrations/...", "agent/...", "cmd/..."},
		"the transport serves the domain; the authority reaches it as an http.Handler"},
	{"rpdebug", []string{"registry/...", "authority/...", "server/...", "sqlstore/...", "migrations/...", "agent/..."},
		"the debugging relying party knows ID4me as any relying party does, from the wire"},
	{"...", []string{"cmd/...", "e2e/...", "bench/...", "internal/layering"}, "nothing imports the binary or the test-only packages"},
	{"cmd/...", testHarnesses, "the programs link none of the tests' harnesses"},
}

// testHarnesses are the packages only tests import.
var testHarnesses = []string{
	"internal/testenv", "internal/oidctest", "internal/testdb", "internal/fakeclock", "internal/dbtest",
	"registry/storetest", "authority/storetest",
}

// serverOnly are packages from outside the module that only the server side needs: gorm and
// the database drivers of the store, the authority's password hashing.
var serverOnly = []string{"gorm.io/...", "modernc.org/sqlite/...", "github.com/jackc/pgx/...", "golang.org/x/crypto/argon2"}

// linkRules says, for each package pattern, the packages from outside the module it must not
// link, directly or through others.
var linkRules = []struct {
	pkg       string
	forbidden []string
	why       string
}{
	{"agent/...", serverOnly, "agents take the agent side without the server side's dependencies"},
	{"cmd/id4me-agent", serverOnly, "the agent's program links none of the server side's dependencies"},
}

type listed struct {
	ImportPath string
	Deps       []string
}

// list returns, for every module package matching pattern, its dependencies by import path
// (test files excluded, as `go list -deps` gives them); the keys are module-relative.
func list(t *testing.T, pattern string) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Deps", module+pattern)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", pattern, err, stderr.String())
	}
	got := map[string][]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listed
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		got[strings.TrimPrefix(p.ImportPath, module)] = p.Deps
	}
	if len(got) == 0 {
		t.Fatalf("go list %s matched no package", pattern)
	}
	return got
}

// moduleDeps returns the module's packages among deps, module-relative.
func moduleDeps(deps []string) []string {
	var rel []string
	for _, d := range deps {
		if r, ok := strings.CutPrefix(d, module); ok {
			rel = append(rel, r)
		}
	}
	return rel
}

// matches reports whether the import path rel (module-relative for the module's packages)
// matches pattern.
func matches(pattern, rel string) bool {
	if pattern == "..." {
		return true
	}
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return rel == base || strings.HasPrefix(rel, base+"/")
	}
	return rel == pattern
}

func TestImportDirection(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is not on PATH")
	}
	for _, r := range rules {
		for pkg, deps := range list(t, r.pkg) {
			for _, d := range moduleDeps(deps) {
				for _, f := range r.forbidden {
					if matches(f, d) && !(r.pkg == "..." && matches(f, pkg)) {
						t.Errorf("%s depends on %s: %s", pkg, d, r.why)
					}
				}
			}
		}
	}
}

func TestLinkedPackages(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is not on PATH")
	}
	for _, r := range linkRules {
		for pkg, deps := range list(t, r.pkg) {
			for _, d := range deps {
				for _, f := range r.forbidden {
					if matches(f, d) {
						t.Errorf("%s links %s: %s", pkg, d, r.why)
					}
				}
			}
		}
	}
}

// TestRulesCanFail: the checks see known dependencies, so a rule against them would fire.
func TestRulesCanFail(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is not on PATH")
	}
	deps := moduleDeps(list(t, "server")["server"])
	if !slices.Contains(deps, "registry") {
		t.Fatalf("go list shows server's module dependencies as %v, without registry", deps)
	}
	// The registry's program links what the agent's must not: each forbidden package is one
	// the registry's program really links, so no pattern is misspelt.
	registryDeps := list(t, "cmd/id4me-registry")["cmd/id4me-registry"]
	for _, r := range linkRules {
		for _, f := range r.forbidden {
			if !slices.ContainsFunc(registryDeps, func(d string) bool { return matches(f, d) }) {
				t.Errorf("cmd/id4me-registry links nothing %s forbids for %s: a pattern that cannot fire", f, r.pkg)
			}
		}
	}
	if !matches("registry/...", "registry") || !matches("...", "x") || matches("agent/...", "agentx") {
		t.Fatal("pattern matching is off")
	}
}
