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
	{"registry", []string{"authority/...", "server/...", "sqlstore/...", "migrations/...", "agent/...", "cmd/..."},
		"the domain knows no transport, store or authority: they know it"},
	{"authority", []string{"server/...", "sqlstore/...", "migrations/...", "agent/...", "cmd/..."},
		"the authority reads the registry through its Resolver interface and keeps state through its Store interface"},
	{"sqlstore", []string{"server/...", "agent/...", "cmd/..."}, "the store implements the domain's interfaces and knows no transport"},
	{"server", []string{"authority/...", "sqlstore/...", "migrations/...", "agent/...", "cmd/..."},
		"the transport serves the domain; the authority reaches it as an http.Handler"},
	{"...", []string{"cmd/...", "e2e/...", "bench/...", "internal/layering"}, "nothing imports the binary or the test-only packages"},
}

type listed struct {
	ImportPath string
	Deps       []string
}

// list returns, for every module package matching pattern, its module dependencies
// (test files excluded, as `go list -deps` gives them).
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
		var deps []string
		for _, d := range p.Deps {
			if rel, ok := strings.CutPrefix(d, module); ok {
				deps = append(deps, rel)
			}
		}
		got[strings.TrimPrefix(p.ImportPath, module)] = deps
	}
	if len(got) == 0 {
		t.Fatalf("go list %s matched no package", pattern)
	}
	return got
}

// matches reports whether the module-relative path rel matches pattern.
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
			for _, d := range deps {
				for _, f := range r.forbidden {
					if matches(f, d) && !(r.pkg == "..." && matches(f, pkg)) {
						t.Errorf("%s depends on %s: %s", pkg, d, r.why)
					}
				}
			}
		}
	}
}

// TestRulesCanFail: the check sees a known dependency, so a rule against it would fire.
func TestRulesCanFail(t *testing.T) {
	deps := list(t, "server")["server"]
	if !slices.Contains(deps, "registry") {
		t.Fatalf("go list shows server's module dependencies as %v, without registry", deps)
	}
	if !matches("registry/...", "registry") || !matches("...", "x") || matches("agent/...", "agentx") {
		t.Fatal("pattern matching is off")
	}
}
