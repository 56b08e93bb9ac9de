package testdb

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// OutageEnv names the environment variable that makes tests needing a PostgreSQL server of
// their own (to stop and start it) fail, rather than skip, when they cannot make one.
const OutageEnv = "ID4ME_TEST_POSTGRES_OUTAGE"

// Server is a PostgreSQL server of one test's own, in a temporary directory on a free
// loopback port, which the test may stop and start. The shared server of PostgresEnv must stay
// up for everyone else.
type Server struct {
	bin     string   // the directory of initdb, pg_ctl, postgres
	dir     string   // data directory, socket directory and log live here
	port    int      // loopback TCP port
	asOwner []string // runs a command as the data directory's owner
}

// StartServer makes a PostgreSQL server with initdb and starts it; t's cleanup stops it and
// removes its files. It skips t when initdb is not found (or in -short mode) unless OutageEnv
// is 1. Run as root, it runs the server as the postgres user, which PostgreSQL requires.
func StartServer(t testing.TB) *Server {
	t.Helper()
	required := os.Getenv(OutageEnv) == "1"
	skip := func(why string) {
		if required {
			t.Fatalf("%s=1 but %s", OutageEnv, why)
		}
		t.Skip(why)
	}
	if testing.Short() && !required {
		skip("a PostgreSQL server of the test's own takes seconds to make (-short)")
	}
	bin := postgresBinDir()
	if bin == "" {
		skip("initdb and pg_ctl not found (apt-get install postgresql)")
	}
	s := &Server{bin: bin}
	dir, err := os.MkdirTemp("", "id4me-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s.dir = dir
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			skip("running as root and there is no postgres user to run the server as")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		s.asOwner = []string{"runuser", "-u", "postgres", "--"}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	s.run(t, "initdb", "-D", s.data(), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
	s.Start(t)
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(s.data(), "postmaster.pid")); err == nil {
			s.Stop(t, "immediate")
		}
	})
	return s
}

// postgresBinDir returns the directory of the newest installed PostgreSQL's programs, or "".
func postgresBinDir() string {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if _, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p)
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return va - vb
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i]
		}
	}
	return ""
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

// run runs one of the server's programs as the data directory's owner.
func (s *Server) run(t testing.TB, program string, args ...string) {
	t.Helper()
	argv := append(slices.Clone(s.asOwner), append([]string{filepath.Join(s.bin, program)}, args...)...)
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
		t.Fatalf("%s: %v\n%s\nserver log:\n%s", strings.Join(argv, " "), err, out, log)
	}
}

// DSN returns the URL of the server's postgres database.
func (s *Server) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

// Start starts the server and waits until it accepts connections.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off", s.port, s.dir)
	s.run(t, "pg_ctl", "start", "-D", s.data(), "-l", filepath.Join(s.dir, "server.log"), "-w", "-t", "60", "-o", opts)
}

// Stop stops the server with pg_ctl's mode: "fast" ends every session with 57P01
// (admin_shutdown), "immediate" drops them as a crash would.
func (s *Server) Stop(t testing.TB, mode string) {
	t.Helper()
	s.run(t, "pg_ctl", "stop", "-D", s.data(), "-m", mode, "-w", "-t", "60")
}
