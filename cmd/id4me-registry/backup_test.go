package main_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/id4me/id4me-registry/internal/testenv"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

// TestBackupRestoreDrill is the drill an operator runs: back up the database of a running
// registry while agents are being created, restore the copy in a new place, serve from it,
// and find there the agents and credentials of before, and of the moment of the backup
// nothing half-written.
func TestBackupRestoreDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the binary twice")
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "registry.db")
	out, stderr, err := cli(t, nil, "admin", "bootstrap", "--db", db)
	if err != nil {
		t.Fatalf("bootstrap: %v\n%s", err, stderr)
	}
	operator := strings.TrimSpace(out)
	in := startInstance(t, db)
	api := registryv1.NewAdminServiceClient(testenv.Connect(t, in.Addr))
	ctx := testenv.Bearer(context.Background(), operator)
	before := testenv.CreateAgent(t, api, ctx, "before", "https://before.agent.test", "https://before.agent.test/userinfo")

	// Agents are created while the backup runs: the copy holds those committed before its
	// snapshot, each whole.
	var (
		mu      sync.Mutex
		created = map[string]bool{before.Agent.Id: true}
		stop    = make(chan struct{})
		done    = make(chan error, 1)
	)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				done <- err
				return
			}
			jwk, _ := jose.JSONWebKey{Key: &key.PublicKey}.MarshalJSON()
			name := fmt.Sprintf("during%d", i)
			a, err := api.CreateAgent(ctx, &registryv1.CreateAgentRequest{
				DisplayName: name, ClaimsEndpoint: "https://" + name + ".agent.test/userinfo",
				Issuer: "https://" + name + ".agent.test", AccountKeyJwk: string(jwk),
			})
			if err != nil {
				done <- err
				return
			}
			mu.Lock()
			created[a.Id] = true
			mu.Unlock()
		}
	}()

	backupFile := filepath.Join(dir, "backup", "registry-backup.db")
	if err := os.Mkdir(filepath.Dir(backupFile), 0o700); err != nil {
		t.Fatal(err)
	}
	out, stderr, err = cli(t, nil, "backup", "--db", db, "--to", backupFile)
	close(stop)
	if werr := <-done; werr != nil {
		t.Fatalf("creating agents during the backup: %v", werr)
	}
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, stderr)
	}
	if !strings.Contains(out, "backed up "+db) || !strings.Contains(out, backupFile) {
		t.Errorf("backup said %q", out)
	}
	if _, err := os.Stat(backupFile + ".partial"); !os.IsNotExist(err) {
		t.Errorf("the partial file is left behind: %v", err)
	}

	// Restore: the copy, in a new place, served.
	restored := filepath.Join(dir, "restored.db")
	data, err := os.ReadFile(backupFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(restored, data, 0o600); err != nil {
		t.Fatal(err)
	}
	rin := startInstance(t, restored)
	rapi := registryv1.NewAdminServiceClient(testenv.Connect(t, rin.Addr))
	list, err := rapi.ListAgents(ctx, &registryv1.ListAgentsRequest{PageSize: 1000})
	if err != nil {
		t.Fatalf("the operator credential of before, against the restored registry: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	found := map[string]bool{}
	for _, a := range list.Agents {
		if !created[a.Id] {
			t.Errorf("the restored registry has agent %s, which was never created", a.Id)
		}
		if a.Issuer == "" || a.ClaimsEndpoint == "" {
			t.Errorf("restored agent %s is not whole: %v", a.Id, a)
		}
		found[a.Id] = true
	}
	if !found[before.Agent.Id] {
		t.Fatalf("the agent created before the backup is missing from the restored registry (%d agents)", len(list.Agents))
	}
	t.Logf("%d agents created, %d in the backup", len(created), len(list.Agents))
	rreg := registryv1.NewRegistryServiceClient(testenv.Connect(t, rin.Addr))
	if _, err := rreg.ListIdentifiers(testenv.Bearer(context.Background(), before.Token), &registryv1.ListIdentifiersRequest{}); err != nil {
		t.Errorf("the agent token of before, against the restored registry: %v", err)
	}

	// What the backup refuses, and says why.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--db", db, "--to", backupFile}, "exists already"},
		{[]string{"--db", db}, "--to FILE is required"},
		{[]string{"--db", db, "--to", filepath.Join(dir, "no-such-dir", "b.db")}, "does not exist; create it first"},
		{[]string{"--db", filepath.Join(dir, "missing.db"), "--to", filepath.Join(dir, "x.db")}, "no database at"},
		{[]string{"--db", "postgres://u@127.0.0.1/x", "--to", filepath.Join(dir, "y.db")}, "pg_dump"},
	} {
		if _, stderr, err := cli(t, nil, append([]string{"backup"}, tc.args...)...); err == nil || !strings.Contains(stderr, tc.want) {
			t.Errorf("backup %v: err %v, stderr %q; want it to say %q", tc.args, err, stderr, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.db")); !os.IsNotExist(err) {
		t.Errorf("backup of a missing database created it: %v", err)
	}
}
