package testenv

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// BuildBinary builds the id4me-registry command into dir and returns its path.
func BuildBinary(dir string) (string, error) {
	return BuildCommand(dir, "id4me-registry")
}

// BuildCommand builds the module's command name (cmd/<name>: id4me-registry, id4me-agent)
// into dir and returns its path.
func BuildCommand(dir, name string) (string, error) {
	path := filepath.Join(dir, name)
	out, err := exec.Command("go", "build", "-o", path, "github.com/id4me/id4me-registry/cmd/"+name).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building %s: %w\n%s", name, err, out)
	}
	return path, nil
}

// lazyCommand is a command of the module built on first use into a temporary directory.
type lazyCommand struct {
	name      string
	once      sync.Once
	dir, path string
	err       error
}

func (c *lazyCommand) build(t testing.TB) string {
	t.Helper()
	c.once.Do(func() {
		if c.dir, c.err = os.MkdirTemp("", c.name+"-bin"); c.err == nil {
			c.path, c.err = BuildCommand(c.dir, c.name)
		}
	})
	if c.err != nil {
		t.Fatal(c.err)
	}
	return c.path
}

func (c *lazyCommand) remove() {
	if c.dir != "" {
		os.RemoveAll(c.dir)
	}
}

var registryCommand, agentCommand = &lazyCommand{name: "id4me-registry"}, &lazyCommand{name: "id4me-agent"}

// Binary returns the path of the id4me-registry command, built on the first call into a
// temporary directory; the package's TestMain removes it with RemoveBinary. A test that
// never calls it builds nothing.
func Binary(t testing.TB) string {
	t.Helper()
	return registryCommand.build(t)
}

// AgentBinary returns the path of the id4me-agent command, built on the first call as Binary
// builds id4me-registry.
func AgentBinary(t testing.TB) string {
	t.Helper()
	return agentCommand.build(t)
}

// RemoveBinary removes what Binary and AgentBinary built, if anything.
func RemoveBinary() {
	registryCommand.remove()
	agentCommand.remove()
}

// CLI runs the binary bin with args and extra environment, and returns stdout and stderr.
func CLI(bin string, env []string, args ...string) (string, string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// Instance is a running `serve` process.
type Instance struct {
	Cmd *exec.Cmd
	// Addr is the gRPC listener's address, HTTPAddr the HTTPS listener's.
	Addr, HTTPAddr string
	mu             sync.Mutex
	logs           strings.Builder
}

// StartInstance runs `bin serve --dev` on dsn with extra flags, on loopback ports of its
// own, and waits until it listens. It is stopped (SIGTERM) when t ends.
func StartInstance(t testing.TB, bin, dsn string, flags ...string) *Instance {
	t.Helper()
	args := append([]string{"serve", "--dev", "--db", dsn, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--agent-rate", "0"}, flags...)
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	in := &Instance{Cmd: cmd}
	cmd.Stderr = logWriter{in}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	addrLine := regexp.MustCompile(`^gRPC on ([^\s,]+), HTTPS on ([^\s,]+)`)
	sc := bufio.NewScanner(stdout)
	for in.Addr == "" && sc.Scan() {
		if m := addrLine.FindStringSubmatch(sc.Text()); m != nil {
			in.Addr, in.HTTPAddr = m[1], m[2]
		}
	}
	if in.Addr == "" {
		t.Fatalf("serve did not say where it listens:\n%s", in.Log())
	}
	go func() {
		for sc.Scan() {
		}
	}()
	return in
}

// Log returns what the instance logged (its standard error) so far.
func (in *Instance) Log() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.logs.String()
}

type logWriter struct{ in *Instance }

func (w logWriter) Write(p []byte) (int, error) {
	w.in.mu.Lock()
	defer w.in.mu.Unlock()
	return w.in.logs.Write(p)
}

// Connect opens a plaintext gRPC connection to addr, closed when t ends.
func Connect(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Bearer returns ctx with token as the call's bearer credential.
func Bearer(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}
