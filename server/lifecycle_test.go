package server_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

// The lifecycle rules are tested where they live, in registry/, on the Service itself. The
// tests here show them through the transport: requests mapped to the Service, answers to
// messages, refusals to codes and reasons, over a real listener and real DNS on loopback.

// TestLifecycleOnTheWire: an identifier's life through the RegistryService, the
// ResolverService and the AdminService, each answer as its message says.
func TestLifecycleOnTheWire(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := e.newAgent("alpha")

	c, err := e.registry.CreateChallenge(a.ctx(), &registryv1.CreateChallengeRequest{Identifier: "Alice.Example.Test.", Purpose: registryv1.Purpose_PURPOSE_REGISTER})
	if err != nil {
		t.Fatal(err)
	}
	if c.Identifier != "alice.example.test" || c.DnsName != "alice.example.test" || c.RecordName != "_acme-challenge.alice.example.test." ||
		c.Status != registryv1.Challenge_STATUS_PENDING || c.Purpose != registryv1.Purpose_PURPOSE_REGISTER || c.Attempts != 0 ||
		c.CreateTime == nil || !c.ExpireTime.AsTime().Equal(c.CreateTime.AsTime().Add(time.Hour)) || c.ValidateTime != nil {
		t.Fatalf("challenge = %v", c)
	}
	if !strings.HasPrefix(c.KeyAuthorization, c.Token+".") || len(c.Token) < 22 || c.RecordValue == "" {
		t.Fatalf("key authorization %q does not start with token %q", c.KeyAuthorization, c.Token)
	}
	if got, err := e.registry.GetChallenge(a.ctx(), &registryv1.GetChallengeRequest{Id: c.Id}); err != nil || got.RecordValue != c.RecordValue {
		t.Fatalf("GetChallenge = %v, %v", got, err)
	}
	e.publish(c)
	v, err := e.registry.VerifyChallenge(a.ctx(), &registryv1.VerifyChallengeRequest{Id: c.Id})
	if err != nil || v.Status != registryv1.Challenge_STATUS_VALID || v.Problem != nil || v.Attempts != 1 || v.ValidateTime == nil {
		t.Fatalf("VerifyChallenge = %v, %v", v, err)
	}
	reg, err := e.registry.RegisterIdentifier(a.ctx(), &registryv1.RegisterIdentifierRequest{ChallengeId: c.Id})
	if err != nil {
		t.Fatal(err)
	}
	id := reg.Identifier
	if id.Name != "alice.example.test" || id.UnicodeName != id.Name || id.DnsName != id.Name || id.AgentId != a.agent.Id ||
		id.EffectiveClaimsEndpoint != a.agent.ClaimsEndpoint || id.ClaimsEndpoint != "" || id.Etag == "" || id.CreateTime == nil ||
		!slices.Equal(id.Statuses, []registryv1.IdentifierStatus{stOK}) || reg.CredentialLink != nil {
		t.Fatalf("registered %v", reg)
	}
	if got, err := e.registry.GetChallenge(a.ctx(), &registryv1.GetChallengeRequest{Id: c.Id}); err != nil || got.Status != registryv1.Challenge_STATUS_CONSUMED {
		t.Fatalf("GetChallenge after the registration = %v, %v; want CONSUMED", got, err)
	}

	got, err := e.registry.GetIdentifier(a.ctx(), &registryv1.GetIdentifierRequest{Identifier: "ALICE.example.test"})
	if err != nil || got.Name != id.Name || got.Etag != id.Etag {
		t.Fatalf("GetIdentifier = %v, %v", got, err)
	}
	// GetIdentifier reports the periodic _openid check, not a live one: nothing before it runs.
	if got.OpenidRecord != nil {
		t.Fatalf("openid record check before any sweep = %v, want unset", got.OpenidRecord)
	}
	for _, ns := range e.ns {
		ns.Add(`_openid.alice.example.test. 60 IN TXT "v=OID1;iss=id.example.test;clp=alpha.agent.test"`)
	}
	e.clock.Advance(24 * time.Hour)
	if n, err := e.svc.SweepOpenID(context.Background()); err != nil || n != 1 {
		t.Fatalf("SweepOpenID = %d, %v; want 1 check", n, err)
	}
	got, err = e.registry.GetIdentifier(a.ctx(), &registryv1.GetIdentifierRequest{Identifier: "alice.example.test"})
	if err != nil || got.OpenidRecord.GetStatus() != registryv1.OpenIDRecordCheck_STATUS_MATCHES || got.OpenidRecord.ClaimsProvider != "alpha.agent.test" ||
		got.OpenidRecord.Issuer != "id.example.test" || !strings.Contains(got.OpenidRecord.Record, "v=OID1") ||
		got.OpenidRecord.CheckTime == nil || !got.OpenidRecord.NextCheckTime.AsTime().After(got.OpenidRecord.CheckTime.AsTime()) {
		t.Fatalf("openid record check = %v, %v; want MATCHES, with the next check due later", got.GetOpenidRecord(), err)
	}

	// Pages of one.
	e.register(a, "bob.example.test")
	first, err := e.registry.ListIdentifiers(a.ctx(), &registryv1.ListIdentifiersRequest{PageSize: 1})
	if err != nil || len(first.Identifiers) != 1 || first.Identifiers[0].Name != "alice.example.test" || first.NextPageToken == "" {
		t.Fatalf("ListIdentifiers = %v, %v", first, err)
	}
	second, err := e.registry.ListIdentifiers(a.ctx(), &registryv1.ListIdentifiersRequest{PageSize: 1, PageToken: first.NextPageToken})
	if err != nil || len(second.Identifiers) != 1 || second.Identifiers[0].Name != "bob.example.test" || second.NextPageToken != "" {
		t.Fatalf("second page = %v, %v", second, err)
	}

	upd, err := e.registry.UpdateIdentifier(a.ctx(), &registryv1.UpdateIdentifierRequest{
		Identifier: &registryv1.Identifier{Name: id.Name, ClaimsEndpoint: "https://claims.alpha.agent.test/alice", Etag: got.Etag},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"claims_endpoint"}},
	})
	if err != nil || upd.EffectiveClaimsEndpoint != "https://claims.alpha.agent.test/alice" || upd.Etag == got.Etag || upd.UpdateTime == nil {
		t.Fatalf("UpdateIdentifier = %v, %v", upd, err)
	}
	res, err := e.resolver.ResolveIdentifier(as(e.admin), &registryv1.ResolveIdentifierRequest{Identifier: "alice.example.test"})
	if err != nil || res.Identifier != id.Name || res.DnsName != id.Name || res.AgentId != a.agent.Id ||
		res.ClaimsEndpoint != "https://claims.alpha.agent.test/alice" || res.AgentIssuer != a.agent.Issuer {
		t.Fatalf("ResolveIdentifier = %v, %v", res, err)
	}

	del, err := e.registry.DeleteIdentifier(a.ctx(), &registryv1.DeleteIdentifierRequest{Identifier: id.Name, Etag: upd.Etag})
	if err != nil || !slices.Equal(del.Statuses, []registryv1.IdentifierStatus{stPendingDelete}) ||
		del.DeleteTime == nil || !del.PurgeTime.AsTime().Equal(del.DeleteTime.AsTime().Add(30*24*time.Hour)) {
		t.Fatalf("DeleteIdentifier = %v, %v; want pending delete with delete and purge times", del, err)
	}
	_, err = e.resolver.ResolveIdentifier(as(e.admin), &registryv1.ResolveIdentifierRequest{Identifier: "alice.example.test"})
	wantStatus(t, err, codes.NotFound, "NOT_RESOLVED_PENDING_DELETE")
	restored, err := e.registry.RestoreIdentifier(a.ctx(), &registryv1.RestoreIdentifierRequest{Identifier: "ALICE.example.test"})
	if err != nil || !slices.Equal(restored.Statuses, []registryv1.IdentifierStatus{stOK}) || restored.DeleteTime != nil || restored.PurgeTime != nil {
		t.Fatalf("RestoreIdentifier = %v, %v", restored, err)
	}

	// Every change is in the journal, with who, what and the states before and after.
	j, err := e.adminAPI.ListJournal(as(e.admin), &registryv1.ListJournalRequest{ObjectType: "identifier", ObjectId: "ALICE.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, en := range j.Entries {
		actions = append(actions, en.Action)
		if en.Actor != "agent:"+a.agent.Id || en.Time == nil || en.ObjectType != "identifier" || en.ObjectId != "alice.example.test" || en.Id == 0 {
			t.Fatalf("journal entry %v", en)
		}
	}
	if strings.Join(actions, ",") != "identifier.register,identifier.update,identifier.delete,identifier.restore" {
		t.Fatalf("journal actions = %v", actions)
	}
	var before, after map[string]any
	if json.Unmarshal([]byte(j.Entries[1].Before), &before) != nil || json.Unmarshal([]byte(j.Entries[1].After), &after) != nil {
		t.Fatalf("update entry before/after not JSON: %v", j.Entries[1])
	}
	if before["claims_endpoint"] != nil || after["claims_endpoint"] != "https://claims.alpha.agent.test/alice" {
		t.Fatalf("update entry before=%v after=%v", before, after)
	}
	// A registration has nothing before it; a deletion leaves the identifier pending delete.
	if j.Entries[0].Before != "" || !strings.Contains(j.Entries[2].After, `"pendingDelete"`) {
		t.Fatalf("register entry has a before, or delete entry no pending delete after: %v / %v", j.Entries[0], j.Entries[2])
	}
	page, err := e.adminAPI.ListJournal(as(e.admin), &registryv1.ListJournalRequest{PageSize: 2})
	if err != nil || len(page.Entries) != 2 || page.NextPageToken == "" {
		t.Fatalf("a page of the journal = %v, %v", page, err)
	}
}

// TestRefusalsOnTheWire: a refusal of each kind reaches the client as its gRPC code, with the
// registry's reason in an ErrorInfo and a message.
func TestRefusalsOnTheWire(t *testing.T) {
	e := newEnv(t, envOptions{})
	a, b := e.newAgent("alpha"), e.newAgent("beta")
	alice := e.register(a, "alice.example.test")
	pending, err := e.registry.CreateChallenge(a.ctx(), &registryv1.CreateChallengeRequest{Identifier: "pending.example.test", Purpose: registryv1.Purpose_PURPOSE_REGISTER})
	if err != nil {
		t.Fatal(err)
	}
	e.update(a, "alice.example.test", "https://claims.alpha.agent.test/alice")
	tests := []struct {
		name   string
		call   func() error
		code   codes.Code
		reason string
	}{
		{"a malformed identifier", func() error {
			_, err := e.registry.CreateChallenge(a.ctx(), &registryv1.CreateChallengeRequest{Identifier: "*.example.test", Purpose: registryv1.Purpose_PURPOSE_REGISTER})
			return err
		}, codes.InvalidArgument, "IDENTIFIER_WILDCARD"},
		{"no purpose", func() error {
			_, err := e.registry.CreateChallenge(a.ctx(), &registryv1.CreateChallengeRequest{Identifier: "nopurpose.example.test"})
			return err
		}, codes.InvalidArgument, "PURPOSE_REQUIRED"},
		{"a page size below zero", func() error {
			_, err := e.registry.ListIdentifiers(a.ctx(), &registryv1.ListIdentifiersRequest{PageSize: -1})
			return err
		}, codes.InvalidArgument, "INVALID_PAGE_SIZE"},
		{"a page token not returned", func() error {
			_, err := e.registry.ListIdentifiers(a.ctx(), &registryv1.ListIdentifiersRequest{PageToken: "garbage!"})
			return err
		}, codes.InvalidArgument, "INVALID_PAGE_TOKEN"},
		{"another agent's identifier", func() error {
			_, err := e.registry.GetIdentifier(b.ctx(), &registryv1.GetIdentifierRequest{Identifier: "alice.example.test"})
			return err
		}, codes.NotFound, "IDENTIFIER_NOT_FOUND"},
		{"another agent's challenge", func() error {
			_, err := e.registry.VerifyChallenge(b.ctx(), &registryv1.VerifyChallengeRequest{Id: pending.Id})
			return err
		}, codes.NotFound, "CHALLENGE_NOT_FOUND"},
		{"a name taken", func() error {
			_, err := e.registry.CreateChallenge(b.ctx(), &registryv1.CreateChallengeRequest{Identifier: "alice.example.test", Purpose: registryv1.Purpose_PURPOSE_REGISTER})
			return err
		}, codes.AlreadyExists, "IDENTIFIER_TAKEN"},
		{"a challenge not verified", func() error {
			_, err := e.registry.RegisterIdentifier(a.ctx(), &registryv1.RegisterIdentifierRequest{ChallengeId: pending.Id})
			return err
		}, codes.FailedPrecondition, "CHALLENGE_NOT_VALID"},
		{"a stale etag", func() error {
			_, err := e.registry.DeleteIdentifier(a.ctx(), &registryv1.DeleteIdentifierRequest{Identifier: "alice.example.test", Etag: alice.Etag})
			return err
		}, codes.Aborted, "ETAG_MISMATCH"},
		{"a server status asked by an agent", func() error {
			_, err := e.registry.UpdateIdentifier(a.ctx(), &registryv1.UpdateIdentifierRequest{
				Identifier: &registryv1.Identifier{Name: "alice.example.test", Statuses: []registryv1.IdentifierStatus{stServerHold}},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"statuses"}},
			})
			return err
		}, codes.PermissionDenied, "STATUS_NOT_CLIENT_SETTABLE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantStatus(t, tt.call(), tt.code, tt.reason) })
	}
}

// TestChallengeProblemOnTheWire: a failed check tells, on the challenge, what each
// nameserver was asked and answered; the challenge reads INVALID once its attempts are used up
// and EXPIRED after its time.
func TestChallengeProblemOnTheWire(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := e.newAgent("alpha")
	c, err := e.registry.CreateChallenge(a.ctx(), &registryv1.CreateChallengeRequest{Identifier: "alice.example.test", Purpose: registryv1.Purpose_PURPOSE_REGISTER})
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range e.ns {
		ns.SetTXT(c.RecordName, "not-the-value")
	}
	v, err := e.registry.VerifyChallenge(a.ctx(), &registryv1.VerifyChallengeRequest{Id: c.Id})
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != registryv1.Challenge_STATUS_PENDING || v.Attempts != 1 || v.Problem.GetReason() != "DNS_RECORD_MISMATCH" || !strings.Contains(v.Problem.Detail, "not-the-value") {
		t.Fatalf("after a check finding another value: %v", v)
	}
	asked := map[string]bool{}
	for _, q := range v.Problem.Nameservers {
		asked[q.Address] = true
		if q.QueryName == "" || q.QueryType == "" || q.Transport == "" || q.Rcode == "" {
			t.Fatalf("nameserver result %v does not say what was asked and answered", q)
		}
	}
	for _, ns := range e.ns {
		if !asked[ns.Addr] {
			t.Fatalf("problem does not list nameserver %s: %v", ns.Addr, v.Problem.Nameservers)
		}
	}
	for range 2 { // ChallengeMaxAttempts in the test env is 3
		if v, err = e.registry.VerifyChallenge(a.ctx(), &registryv1.VerifyChallengeRequest{Id: c.Id}); err != nil {
			t.Fatal(err)
		}
	}
	if v.Status != registryv1.Challenge_STATUS_INVALID || v.Attempts != 3 {
		t.Fatalf("after 3 failed checks: %v", v)
	}
	_, err = e.registry.VerifyChallenge(a.ctx(), &registryv1.VerifyChallengeRequest{Id: c.Id})
	wantStatus(t, err, codes.FailedPrecondition, "CHALLENGE_INVALID")

	other, err := e.registry.CreateChallenge(a.ctx(), &registryv1.CreateChallengeRequest{Identifier: "bob.example.test", Purpose: registryv1.Purpose_PURPOSE_REGISTER})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour)
	if got, err := e.registry.GetChallenge(a.ctx(), &registryv1.GetChallengeRequest{Id: other.Id}); err != nil || got.Status != registryv1.Challenge_STATUS_EXPIRED {
		t.Fatalf("GetChallenge after its hour = %v, %v; want EXPIRED", got, err)
	}
}

// TestUpdateIdentifierOnTheWire: UpdateIdentifier reads the fields its mask names (both when
// it names none); IDENTIFIER_STATUS_OK asks for no status, and a status the API does not know
// is refused.
func TestUpdateIdentifierOnTheWire(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := e.newAgent("alpha")
	e.register(a, "alice.example.test")
	update := func(i *registryv1.Identifier, paths ...string) (*registryv1.Identifier, error) {
		i.Name = "alice.example.test"
		req := &registryv1.UpdateIdentifierRequest{Identifier: i}
		if paths != nil {
			req.UpdateMask = &fieldmaskpb.FieldMask{Paths: paths}
		}
		return e.registry.UpdateIdentifier(a.ctx(), req)
	}
	got, err := update(&registryv1.Identifier{ClaimsEndpoint: "https://ignored.test/", Statuses: []registryv1.IdentifierStatus{stClientDeleteProhibited, stClientTransferProhibited}}, "statuses")
	if err != nil || got.ClaimsEndpoint != "" || !sameStatuses(got.Statuses, []registryv1.IdentifierStatus{stClientDeleteProhibited, stClientTransferProhibited}) {
		t.Fatalf("statuses alone = %v, %v", got, err)
	}
	got, err = update(&registryv1.Identifier{ClaimsEndpoint: "https://claims.alpha.agent.test/alice"}, "claims_endpoint")
	if err != nil || got.ClaimsEndpoint != "https://claims.alpha.agent.test/alice" || len(got.Statuses) != 2 {
		t.Fatalf("the claims endpoint alone = %v, %v", got, err)
	}
	got, err = update(&registryv1.Identifier{Statuses: []registryv1.IdentifierStatus{stOK}}, "statuses")
	if err != nil || !slices.Equal(got.Statuses, []registryv1.IdentifierStatus{stOK}) {
		t.Fatalf("asking for OK = %v, %v; want no status", got, err)
	}
	got, err = update(&registryv1.Identifier{Statuses: []registryv1.IdentifierStatus{stClientUpdateProhibited}})
	if err != nil || got.ClaimsEndpoint != "" || !slices.Equal(got.Statuses, []registryv1.IdentifierStatus{stClientUpdateProhibited}) {
		t.Fatalf("no mask = %v, %v; want both fields set", got, err)
	}
	_, err = update(&registryv1.Identifier{Statuses: []registryv1.IdentifierStatus{99}}, "statuses")
	wantStatus(t, err, codes.InvalidArgument, "STATUS_UNKNOWN")
	_, err = update(&registryv1.Identifier{}, "name")
	wantStatus(t, err, codes.InvalidArgument, "UPDATE_MASK_INVALID")
	_, err = e.registry.UpdateIdentifier(a.ctx(), &registryv1.UpdateIdentifierRequest{})
	wantStatus(t, err, codes.InvalidArgument, "IDENTIFIER_REQUIRED")
}

func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := e.newAgent("alpha")
	c, err := e.registry.CreateChallenge(a.ctx(), &registryv1.CreateChallengeRequest{Identifier: "slow.example.test", Purpose: registryv1.Purpose_PURPOSE_REGISTER})
	if err != nil {
		t.Fatal(err)
	}
	e.publish(c)
	e.ns[1].SetSilent(true) // the check waits for this server's timeout
	done := make(chan error, 1)
	go func() {
		v, err := e.registry.VerifyChallenge(a.ctx(), &registryv1.VerifyChallengeRequest{Id: c.Id})
		if err == nil && v.Status != registryv1.Challenge_STATUS_VALID {
			err = status.Errorf(codes.Unknown, "status %v", v.Status)
		}
		done <- err
	}()
	waitFor(t, func() bool { return len(e.ns[1].Queries()) > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.srv.Shutdown(ctx)
	if err := <-done; err != nil {
		t.Fatalf("in-flight VerifyChallenge: %v", err)
	}
	got, err := e.svc.GetChallenge(context.Background(), actorOf(a), c.Id)
	if err != nil || got.Status != "valid" {
		t.Fatalf("after shutdown the challenge is %v, %v", got.Status, err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
