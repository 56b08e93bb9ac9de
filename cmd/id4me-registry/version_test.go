package main_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVersionWithoutVCSInformation builds the binary as CI does, without VCS information
// (-buildvcs=false), with the README's ldflags: `version` prints the version and commit
// given; without the ldflags it says they are unknown. (.ci/run builds it without cgo, as
// the Dockerfile does.)
func TestVersionWithoutVCSInformation(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary twice")
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		ldflags string
		want    string
	}{
		{"-X main.version=v1.2.3 -X main.commit=0123456789abcdef", "id4me-registry v1.2.3 (commit 0123456789abcdef) go"},
		{"", "id4me-registry devel (commit unknown) go"},
	} {
		bin := filepath.Join(dir, "id4me-registry")
		build := exec.Command("go", "build", "-buildvcs=false", "-ldflags", tc.ldflags, "-o", bin, "github.com/id4me/id4me-registry/cmd/id4me-registry")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build -ldflags %q: %v\n%s", tc.ldflags, err, out)
		}
		out, err := exec.Command(bin, "version").Output()
		if err != nil || !strings.HasPrefix(string(out), tc.want) {
			t.Errorf("version of a build with -ldflags %q: %q, %v; want %q…", tc.ldflags, out, err, tc.want)
		}
	}
}
