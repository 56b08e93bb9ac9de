package e2e

import (
	"os"
	"testing"

	"github.com/id4me/id4me-registry/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveBinary()
	os.Exit(code)
}

// long skips t under -short, saying what it would have run: every test here starts whole
// registries, browsers or DNS servers.
func long(t *testing.T, what string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("end-to-end test (%s): skipped under -short; go test ./e2e/ runs it", what)
	}
}

// cli runs the id4me-registry binary with args and extra environment, and returns stdout and
// stderr.
func cli(t *testing.T, env []string, args ...string) (string, string, error) {
	t.Helper()
	return testenv.CLI(testenv.Binary(t), env, args...)
}

// startInstance runs `serve --dev` of the binary on dsn with extra flags.
func startInstance(t *testing.T, dsn string, flags ...string) *testenv.Instance {
	t.Helper()
	return testenv.StartInstance(t, testenv.Binary(t), dsn, flags...)
}
