package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/internal/procstat"
	"github.com/id4me/id4me-registry/internal/storedb"
	"github.com/id4me/id4me-registry/migrations"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
	"github.com/id4me/id4me-registry/registry"
	"github.com/id4me/id4me-registry/sqlstore"
)

// The seeded database of BenchmarkMillionIdentifiers.
const (
	millionIdentifiers = 1_000_000
	millionAgents      = 100
	// seedLayout numbers what seedBulk writes; change it whenever seedBulk changes, so that
	// cached databases of the old layout are seeded again rather than reused.
	seedLayout = 3
	// listPageSize is the page size of the listing timed.
	listPageSize = 100
	// millionResolves is how many resolves the server answers before its memory is read.
	millionResolves = 100_000
)

// BenchmarkMillionIdentifiers runs the built binary (`serve --dev`) on a SQLite database of
// 1,000,000 identifiers held by 100 agents (10,000 each, their names interleaved), and over
// loopback gRPC:
//
//   - walks one agent's 10,000 identifiers with page tokens (walk_ms, 100 pages of 100);
//   - then, each iteration, fetches its first page and its last page again: first_page_ms
//     and last_page_ms are the medians (keyset pagination should make them equal);
//   - resolves 100,000 random identifiers from 16 clients (resolves/s);
//   - reads the server's VmRSS and VmHWM from /proc/<pid>/status: rss_mb, peak_rss_mb.
//
// Seeding takes about a minute, so the seeded database is kept in
// $XDG_CACHE_HOME/id4me-registry-bench/ (os.UserCacheDir), named after the schema version and
// the seed layout; each run works on a copy. Remove that directory to seed again.
//
//	go test -run=NONE -bench=MillionIdentifiers ./bench/
func BenchmarkMillionIdentifiers(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("reads the server's memory from /proc")
	}
	cached := millionDB(b)
	dir := b.TempDir()
	dbPath := filepath.Join(dir, "registry.db")
	if err := copyFile(cached, dbPath); err != nil {
		b.Fatal(err)
	}
	bin := buildBinary(b, dir)

	operator := withBearer(bootstrapOperator(b, bin, dbPath))
	agentID := busiestAgent(b, dbPath)
	srv := startBinary(b, bin, dbPath, filepath.Join(dir, "serve.log"))
	conn := dial(b, srv.grpcAddr)
	tok, err := registryv1.NewAdminServiceClient(conn).CreateAgentToken(operator, &registryv1.CreateAgentTokenRequest{AgentId: agentID, Description: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	agent := withBearer(tok.Secret)
	api := registryv1.NewRegistryServiceClient(conn)
	list := func(token string) (*registryv1.ListIdentifiersResponse, error) {
		return api.ListIdentifiers(agent, &registryv1.ListIdentifiersRequest{PageSize: listPageSize, PageToken: token})
	}

	walkStart := time.Now()
	var lastToken string
	seen := 0
	for token := ""; ; {
		page, err := list(token)
		if err != nil {
			b.Fatal(err)
		}
		seen += len(page.Identifiers)
		if page.NextPageToken == "" {
			lastToken = token
			break
		}
		token = page.NextPageToken
	}
	walk := time.Since(walkStart)
	if want := millionIdentifiers / millionAgents; seen != want {
		b.Fatalf("walked %d identifiers of agent %s, want %d", seen, agentID, want)
	}

	var firstTimes, lastTimes []time.Duration
	for b.Loop() {
		for _, p := range []struct {
			token string
			times *[]time.Duration
		}{{"", &firstTimes}, {lastToken, &lastTimes}} {
			start := time.Now()
			if _, err := list(p.token); err != nil {
				b.Fatal(err)
			}
			*p.times = append(*p.times, time.Since(start))
		}
	}

	resolves := resolveMany(operator, b, srv.grpcAddr, millionResolves)
	rss, peak, err := procstat.Memory(srv.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(ms(walk), "walk_ms")
	b.ReportMetric(ms(median(firstTimes)), "first_page_ms")
	b.ReportMetric(ms(median(lastTimes)), "last_page_ms")
	b.ReportMetric(resolves, "resolves/s")
	b.ReportMetric(rss, "rss_mb")
	b.ReportMetric(peak, "peak_rss_mb")
}

// resolveMany resolves n random identifiers of the seeded database from concurrency clients,
// authenticated by operator's credential, and returns the rate.
func resolveMany(operator context.Context, tb testing.TB, addr string, n int) float64 {
	tb.Helper()
	clients := make([]registryv1.ResolverServiceClient, concurrency)
	rngs := make([]*mrand.Rand, concurrency)
	for k := range clients {
		clients[k] = registryv1.NewResolverServiceClient(dial(tb, addr))
		rngs[k] = mrand.New(mrand.NewPCG(uint64(k), 1))
	}
	start := time.Now()
	err := parallel(concurrency, n, func(worker, _ int) error {
		name := seededName(rngs[worker].IntN(millionIdentifiers))
		_, err := clients[worker].ResolveIdentifier(operator, &registryv1.ResolveIdentifierRequest{Identifier: name})
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return float64(n) / time.Since(start).Seconds()
}

// millionDB returns the path of the cached database of millionIdentifiers identifiers,
// seeding it first if there is none for the current schema and seed layout.
func millionDB(tb testing.TB) string {
	tb.Helper()
	schema, err := migrations.Latest(migrations.SQLite)
	if err != nil {
		tb.Fatal(err)
	}
	cacheDir, err := os.UserCacheDir()
	if err != nil {
		tb.Fatal(err)
	}
	dir := filepath.Join(cacheDir, "id4me-registry-bench")
	path := filepath.Join(dir, fmt.Sprintf("million-schema%d-layout%d.db", schema, seedLayout))
	if _, err := os.Stat(path); err == nil {
		return path
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	// Seeded under a name of its own and renamed when complete, so an interrupted seed is
	// never taken for a finished one.
	tmp := fmt.Sprintf("%s.seeding-%d", path, os.Getpid())
	defer removeDB(tmp)
	tb.Logf("seeding %d identifiers into %s (once; later runs reuse it)", millionIdentifiers, path)
	start := time.Now()
	seedBulk(tb, tmp, millionAgents, millionIdentifiers)
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatal(err)
	}
	tb.Logf("seeded in %v", time.Since(start).Round(time.Second))
	return path
}

// removeDB removes a SQLite database and its WAL files.
func removeDB(path string) {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(path + suffix)
	}
}

// seededName returns the name of the k-th seeded identifier; identifier k belongs to agent
// k % agents, so every agent's names are spread over the whole name range.
func seededName(k int) string { return fmt.Sprintf("u%07d.%s", k, zone) }

// seedBulk creates a registry database at path with agents agents (through the service) and
// n identifiers with their identities (straight into the tables, with multi-row INSERTs,
// 50,000 identifiers to a transaction). It writes no journal entries and no challenges.
func seedBulk(tb testing.TB, path string, agents, n int) {
	tb.Helper()
	ctx := context.Background()
	store, err := sqlstore.Open(ctx, path)
	if err != nil {
		tb.Fatal(err)
	}
	defer store.Close()
	svc, err := registry.New(registry.Config{Store: store})
	if err != nil {
		tb.Fatal(err)
	}
	agentIDs := createAgents(tb, svc, agents)
	if err := insertIdentifiers(ctx, store, agentIDs, n); err != nil {
		tb.Fatal(err)
	}
}

// insertIdentifiers writes n identifiers, identifier k held by agentIDs[k % len(agentIDs)],
// each with a new identity.
func insertIdentifiers(ctx context.Context, store *sqlstore.Store, agentIDs []string, n int) error {
	sqlDB, err := storedb.DB(store).DB()
	if err != nil {
		return err
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// The indexes being built stay in memory; a crash only loses a seed that is redone.
	for _, pragma := range []string{"PRAGMA cache_size = -1048576", "PRAGMA synchronous = OFF"} {
		if _, err := conn.ExecContext(ctx, pragma); err != nil {
			return fmt.Errorf("%s: %w", pragma, err)
		}
	}

	const (
		perStatement = 500
		perTx        = 50_000
	)
	var seed [32]byte
	rand.Read(seed[:])
	rng := mrand.NewChaCha8(seed)
	now := time.Now().UTC().Truncate(time.Microsecond).UnixNano()
	var raw [32]byte
	for txStart := 0; txStart < n; txStart += perTx {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		for start := txStart; start < min(txStart+perTx, n); start += perStatement {
			rows := min(perStatement, n-start)
			identities := make([]any, 0, 4*rows)
			identifiers := make([]any, 0, 11*rows)
			for k := start; k < start+rows; k++ {
				rng.Read(raw[:16])
				id := registry.IdentityIDPrefix + idEncoding.EncodeToString(raw[:16])
				rng.Read(raw[:])
				identities = append(identities, id, base64.RawURLEncoding.EncodeToString(raw[:]), now, nil)
				name := seededName(k)
				// The first _openid check is due a day after the seed (spread over an hour),
				// as after registrations, so that none is due when the benchmarks run.
				nextCheck := now + int64(24*time.Hour) + int64(k%3600)*int64(time.Second)
				identifiers = append(identifiers, name, name, agentIDs[k%len(agentIDs)], id, "", "", now, now, 1, nextCheck, name)
			}
			if _, err := tx.ExecContext(ctx, insertSQL("identities", "id, subject_seed, create_time, retire_time", 4, rows), identities...); err != nil {
				tx.Rollback()
				return fmt.Errorf("insert identities: %w", err)
			}
			if _, err := tx.ExecContext(ctx, insertSQL("identifiers", "name, unicode_name, agent_id, identity_id, claims_endpoint, statuses, create_time, update_time, version, openid_next_check, dns_name", 11, rows), identifiers...); err != nil {
				tx.Rollback()
				return fmt.Errorf("insert identifiers: %w", err)
			}
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	if _, err := conn.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// insertSQL returns a multi-row INSERT of rows rows of cols columns into table.
func insertSQL(table, columns string, cols, rows int) string {
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
	return "INSERT INTO " + table + " (" + columns + ") VALUES " + strings.TrimSuffix(strings.Repeat(row+", ", rows), ", ")
}

// busiestAgent returns the agent with the most identifiers in the database at path.
func busiestAgent(tb testing.TB, path string) string {
	tb.Helper()
	store, err := sqlstore.Open(context.Background(), path)
	if err != nil {
		tb.Fatal(err)
	}
	defer store.Close()
	var id string
	err = storedb.DB(store).Raw("SELECT agent_id FROM identifiers GROUP BY agent_id ORDER BY count(*) DESC, agent_id LIMIT 1").Scan(&id).Error
	if err != nil || id == "" {
		tb.Fatalf("busiest agent: %q, %v", id, err)
	}
	return id
}

// buildBinary builds cmd/id4me-registry into dir and returns its path.
func buildBinary(tb testing.TB, dir string) string {
	tb.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(dir, "id4me-registry")
	cmd := exec.Command(goTool, "build", "-o", bin, "github.com/id4me/id4me-registry/cmd/id4me-registry")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// bootstrapOperator runs `admin bootstrap --force` on the database and returns the operator
// credential it prints.
func bootstrapOperator(tb testing.TB, bin, dbPath string) string {
	tb.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "admin", "bootstrap", "--force", "--description", "bench", "--db", dbPath)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("admin bootstrap: %v\n%s", err, stderr.Bytes())
	}
	token := strings.TrimSpace(stdout.String())
	if !strings.HasPrefix(token, registry.OperatorPrefix) || strings.ContainsAny(token, " \n") {
		tb.Fatalf("admin bootstrap printed %q, want one operator credential", token)
	}
	return token
}

// binaryServer is a running `id4me-registry serve`.
type binaryServer struct {
	cmd      *exec.Cmd
	grpcAddr string
}

// startBinary starts `serve --dev` on the database, on free loopback ports, with its log in
// logPath; tb's cleanup stops it (SIGTERM, then SIGKILL after 10 s).
func startBinary(tb testing.TB, bin, dbPath, logPath string) *binaryServer {
	tb.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { logFile.Close() })
	// No DNS check runs here; pinning a loopback nameserver keeps the binary from using the
	// system's resolvers. The per-agent rate limit is off: the listing is timed, not throttled.
	cmd := exec.Command(bin, "serve", "--dev", "--db", dbPath,
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--dns-server", "127.0.0.1:53", "--agent-rate", "0")
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan struct{})
	tb.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	addrc := make(chan string, 1)
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			// "gRPC on 127.0.0.1:40123, HTTPS on …"
			if rest, ok := strings.CutPrefix(sc.Text(), "gRPC on "); ok {
				addr, _, _ := strings.Cut(rest, ",")
				addrc <- addr
			}
		}
		io.Copy(io.Discard, stdout)
		cmd.Wait()
	}()
	select {
	case addr := <-addrc:
		return &binaryServer{cmd: cmd, grpcAddr: addr}
	case <-exited:
	case <-time.After(60 * time.Second):
	}
	logText, _ := os.ReadFile(logPath)
	tb.Fatalf("serve did not say where it listens:\n%s", logText)
	return nil
}

// copyFile copies the file at src to dst.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
