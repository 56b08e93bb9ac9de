package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/internal/testdb"
	"github.com/id4me/id4me-registry/internal/testenv"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

// TestTwoInstancesAutoApproveOnce runs two `serve` processes on one PostgreSQL database with a
// short transfer pending period and both running the background sweeps; one of them crashes
// (SIGKILL) after the transfers are requested and is started again. Every transfer is
// approved by the registry exactly once: one journal entry each, and each agent gets exactly
// one completion event per transfer.
func TestTwoInstancesAutoApproveOnce(t *testing.T) {
	long(t, "two serve processes on one PostgreSQL database, one of them crashing")
	dsn := testdb.Postgres(t)
	const zone = "example.test."
	nss := testenv.StartNameservers(t, 2, zone)
	var dnsFlags []string
	for _, ns := range nss {
		dnsFlags = append(dnsFlags, "--dns-server", ns.Addr)
	}
	out, stderr, err := cli(t, nil, "admin", "bootstrap", "--db", dsn)
	if err != nil {
		t.Fatalf("bootstrap: %v\n%s", err, stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin := testenv.Bearer(ctx, strings.TrimSpace(out))
	flags := append([]string{"--transfer-pending-period", "2s", "--sweep-interval", "100ms", "--auth-cache-ttl", "-1s"}, dnsFlags...)
	instances := []*testenv.Instance{startInstance(t, dsn, flags...), startInstance(t, dsn, flags...)}

	// Four agents; on instance k%2 each: agents 0 and 1 lose identifiers to agents 2 and 3.
	type agent struct {
		id  string
		ctx context.Context
		api registryv1.RegistryServiceClient
	}
	var agents []agent
	adminAPI := registryv1.NewAdminServiceClient(testenv.Connect(t, instances[0].Addr))
	for k := range 4 {
		host := fmt.Sprintf("agent%d.example", k)
		a := testenv.CreateAgent(t, adminAPI, admin, host, "https://"+host, "https://"+host+"/claims")
		agents = append(agents, agent{a.Agent.Id, testenv.Bearer(ctx, a.Token), registryv1.NewRegistryServiceClient(testenv.Connect(t, instances[k%2].Addr))})
	}
	prove := func(a agent, name string, purpose registryv1.Purpose) string {
		t.Helper()
		c, err := a.api.CreateChallenge(a.ctx, &registryv1.CreateChallengeRequest{Identifier: name, Purpose: purpose})
		if err != nil {
			t.Fatalf("CreateChallenge(%s): %v", name, err)
		}
		for _, ns := range nss {
			ns.SetTXT(c.RecordName, c.RecordValue)
		}
		v, err := a.api.VerifyChallenge(a.ctx, &registryv1.VerifyChallengeRequest{Id: c.Id})
		if err != nil || v.Status != registryv1.Challenge_STATUS_VALID {
			t.Fatalf("VerifyChallenge(%s): %v %v", name, v, err)
		}
		return c.Id
	}

	const transfers = 20
	want := make(map[string]bool) // transfer ids
	for k := range transfers {
		name := fmt.Sprintf("holder%02d.%s", k, strings.TrimSuffix(zone, "."))
		loser, gainer := agents[k%2], agents[2+k%2]
		if _, err := loser.api.RegisterIdentifier(loser.ctx, &registryv1.RegisterIdentifierRequest{ChallengeId: prove(loser, name, registryv1.Purpose_PURPOSE_REGISTER)}); err != nil {
			t.Fatal(err)
		}
		tr, err := gainer.api.RequestTransfer(gainer.ctx, &registryv1.RequestTransferRequest{ChallengeId: prove(gainer, name, registryv1.Purpose_PURPOSE_TRANSFER)})
		if err != nil {
			t.Fatal(err)
		}
		if tr.Status != registryv1.Transfer_STATUS_PENDING {
			t.Fatalf("transfer %s is %v, want pending", tr.Id, tr.Status)
		}
		want[tr.Id] = true
	}

	// Instance 0 crashes and is started again: the pending transfers are in the database,
	// so nothing is lost. From here on every call goes to instance 1.
	instances[0].Cmd.Process.Kill()
	instances[0].Cmd.Wait()
	instances[0] = startInstance(t, dsn, flags...)
	for k := range agents {
		agents[k].api = registryv1.NewRegistryServiceClient(testenv.Connect(t, instances[1].Addr))
	}
	adminAPI = registryv1.NewAdminServiceClient(testenv.Connect(t, instances[1].Addr))

	// Wait until the sweeps of the two instances approved every transfer.
	for id := range want {
		for {
			tr, err := agents[2].api.GetTransfer(agents[2].ctx, &registryv1.GetTransferRequest{Id: id})
			if err != nil {
				tr, err = agents[3].api.GetTransfer(agents[3].ctx, &registryv1.GetTransferRequest{Id: id})
			}
			if err != nil {
				t.Fatal(err)
			}
			if tr.Status == registryv1.Transfer_STATUS_SERVER_APPROVED {
				break
			}
			if tr.Status != registryv1.Transfer_STATUS_PENDING {
				t.Fatalf("transfer %s ended %v", id, tr.Status)
			}
			select {
			case <-ctx.Done():
				t.Fatalf("transfer %s still pending; logs:\n%s\n%s", id, instances[0].Log(), instances[1].Log())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	// Give a sweep that might approve twice the chance to: two more rounds of both instances.
	time.Sleep(300 * time.Millisecond)

	handled := regexp.MustCompile(`job=transfers handled=(\d+)`)
	for k, in := range instances {
		t.Logf("instance %d approved transfers in %d sweeps", k, len(handled.FindAllString(in.Log(), -1)))
	}

	// One approval each in the journal.
	approvals := make(map[string]int)
	for token := ""; ; {
		page, err := adminAPI.ListJournal(admin, &registryv1.ListJournalRequest{ObjectType: "transfer", PageSize: 1000, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Entries {
			if e.Action == "transfer.approve" {
				approvals[e.ObjectId]++
			}
		}
		if token = page.NextPageToken; token == "" {
			break
		}
	}
	for id := range want {
		if approvals[id] != 1 {
			t.Errorf("transfer %s approved %d times in the journal, want 1", id, approvals[id])
		}
	}

	// Each agent: exactly one completion event per transfer it lost or gained.
	for k, a := range agents {
		completions := make(map[string]int)
		for token := ""; ; {
			page, err := a.api.ListEvents(a.ctx, &registryv1.ListEventsRequest{PageSize: 1000, PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range page.Events {
				wantType := registryv1.Event_TYPE_TRANSFER_COMPLETED_OUT
				if k >= 2 {
					wantType = registryv1.Event_TYPE_TRANSFER_COMPLETED_IN
				}
				if ev.Type == wantType {
					completions[ev.Transfer.GetId()]++
				}
			}
			if token = page.NextPageToken; token == "" {
				break
			}
		}
		if len(completions) != transfers/2 {
			t.Errorf("agent %d has completion events for %d transfers, want %d", k, len(completions), transfers/2)
		}
		for id, n := range completions {
			if n != 1 || !want[id] {
				t.Errorf("agent %d: %d completion events for transfer %s", k, n, id)
			}
		}
	}
}
