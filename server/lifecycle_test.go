package server_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/id4me/id4me-registry/internal/testdb"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

func TestLifecycleHappyPath(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := e.newAgent("alpha")

	c, err := e.registry.CreateChallenge(a.ctx(), &registryv1.CreateChallengeRequest{Identifier: "Alice.Example.Test.", Purpose: registryv1.Purpose_PURPOSE_REGISTER})
	if err != nil {
		t.Fatal(err)
	}
	if c.Identifier != "alice.example.test" || c.RecordName != "_acme-challenge.alice.example.test." || c.Status != registryv1.Challenge_STATUS_PENDING {
		t.Fatalf("challenge = %v", c)
	}
	if !strings.HasPrefix(c.KeyAuthorization, c.Token+".") || len(c.Token) < 22 {
		t.Fatalf("key authorization %q does not start with token %q", c.KeyAuthorization, c.Token)
	}
	if got, err := e.registry.GetChallenge(a.ctx(), &registryv1.GetChallengeRequest{Id: c.Id}); err != nil || got.RecordValue != c.RecordValue {
		t.Fatalf("GetChallenge = %v, %v", got, err)
	}
	e.publish(c)
	v, err := e.registry.VerifyChallenge(a.ctx(), &registryv1.VerifyChallengeRequest{Id: c.Id})
	if err != nil || v.Status != registryv1.Challenge_STATUS_VALID || v.Problem != nil {
		t.Fatalf("VerifyChallenge = %v, %v", v, err)
	}
	for _, ns := range e.ns {
		for _, q := range ns.Queries() {
			if q.RecursionDesired {
				t.Fatalf("nameserver was asked %s %s with recursion desired", q.Name, q.Type)
			}
		}
	}
	reg, err := e.registry.RegisterIdentifier(a.ctx(), &registryv1.RegisterIdentifierRequest{ChallengeId: c.Id})
	if err != nil {
		t.Fatal(err)
	}
	id := reg.Identifier
	if id.Name != "alice.example.test" || id.AgentId != a.agent.Id || id.EffectiveClaimsEndpoint != a.agent.ClaimsEndpoint || id.Etag == "" {
		t.Fatalf("registered %v", id)
	}

	got, err := e.registry.GetIdentifier(a.ctx(), &registryv1.GetIdentifierRequest{Identifier: "ALICE.example.test"})
	if err != nil || got.Name != id.Name {
		t.Fatalf("GetIdentifier = %v, %v", got, err)
	}
	// GetIdentifier reports the periodic _openid check, not a live one: nothing before it runs.
	if got.OpenidRecord != nil {
		t.Fatalf("openid record check before any sweep = %v, want unset", got.OpenidRecord)
	}
	e.ns[0].Add(`_openid.alice.example.test. 60 IN TXT "v=OID1;iss=id.example.test;clp=alpha.agent.test"`)
	e.ns[1].Add(`_openid.alice.example.test. 60 IN TXT "v=OID1;iss=id.example.test;clp=alpha.agent.test"`)
	// The first check is due within the check interval (24h by default) of the registration.
	e.clock.Advance(24 * time.Hour)
	if n, err := e.svc.SweepOpenID(context.Background()); err != nil || n != 1 {
		t.Fatalf("SweepOpenID = %d, %v; want 1 check", n, err)
	}
	got, err = e.registry.GetIdentifier(a.ctx(), &registryv1.GetIdentifierRequest{Identifier: "alice.example.test"})
	if err != nil || got.OpenidRecord.GetStatus() != registryv1.OpenIDRecordCheck_STATUS_MATCHES || got.OpenidRecord.ClaimsProvider != "alpha.agent.test" ||
		got.OpenidRecord.CheckTime == nil || !got.OpenidRecord.NextCheckTime.AsTime().After(got.OpenidRecord.CheckTime.AsTime()) {
		t.Fatalf("openid record check = %v, %v; want MATCHES, with the next check due later", got.GetOpenidRecord(), err)
	}

	list, err := e.registry.ListIdentifiers(a.ctx(), &registryv1.ListIdentifiersRequest{})
	if err != nil || len(list.Identifiers) != 1 || list.NextPageToken != "" {
		t.Fatalf("ListIdentifiers = %v, %v", list, err)
	}

	upd, err := e.registry.UpdateIdentifier(a.ctx(), &registryv1.UpdateIdentifierRequest{
		Identifier: &registryv1.Identifier{Name: id.Name, ClaimsEndpoint: "https://claims.alpha.agent.test/alice", Etag: got.Etag},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"claims_endpoint"}},
	})
	if err != nil || upd.EffectiveClaimsEndpoint != "https://claims.alpha.agent.test/alice" || upd.Etag == got.Etag {
		t.Fatalf("UpdateIdentifier = %v, %v", upd, err)
	}
	_, err = e.registry.UpdateIdentifier(a.ctx(), &registryv1.UpdateIdentifierRequest{
		Identifier: &registryv1.Identifier{Name: id.Name, ClaimsEndpoint: "https://elsewhere.test/", Etag: got.Etag},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"claims_endpoint"}},
	})
	wantStatus(t, err, codes.Aborted, "ETAG_MISMATCH")

	res, err := e.resolver.ResolveIdentifier(as(e.admin), &registryv1.ResolveIdentifierRequest{Identifier: "alice.example.test"})
	if err != nil || res.AgentId != a.agent.Id || res.ClaimsEndpoint != "https://claims.alpha.agent.test/alice" || res.AgentIssuer != a.agent.Issuer {
		t.Fatalf("ResolveIdentifier = %v, %v", res, err)
	}

	// Deletion starts the redemption period: the identifier stops resolving, its name stays
	// taken, and its identity lives on until the purge.
	del, err := e.registry.DeleteIdentifier(a.ctx(), &registryv1.DeleteIdentifierRequest{Identifier: id.Name})
	if err != nil || del.Name != id.Name || !slices.Contains(del.Statuses, registryv1.IdentifierStatus_IDENTIFIER_STATUS_PENDING_DELETE) ||
		del.DeleteTime == nil || del.PurgeTime == nil || !del.PurgeTime.AsTime().After(del.DeleteTime.AsTime()) {
		t.Fatalf("DeleteIdentifier = %v, %v; want pending delete with delete and purge times", del, err)
	}
	_, err = e.resolver.ResolveIdentifier(as(e.admin), &registryv1.ResolveIdentifierRequest{Identifier: "alice.example.test"})
	wantStatus(t, err, codes.NotFound, "NOT_RESOLVED_PENDING_DELETE")
	if got, err := e.registry.GetIdentifier(a.ctx(), &registryv1.GetIdentifierRequest{Identifier: id.Name}); err != nil || !got.PurgeTime.AsTime().Equal(del.PurgeTime.AsTime()) {
		t.Fatalf("GetIdentifier while pending delete = %v, %v", got, err)
	}
	if n := e.countRows("identities", "retire_time IS NOT NULL"); n != 0 {
		t.Fatalf("%d retired identities during the redemption period, want 0", n)
	}
	_, err = e.registry.CreateChallenge(a.ctx(), &registryv1.CreateChallengeRequest{Identifier: id.Name, Purpose: registryv1.Purpose_PURPOSE_REGISTER})
	wantStatus(t, err, codes.AlreadyExists, "IDENTIFIER_TAKEN")

	// Every change is in the journal, with who, what and the states before and after.
	j, err := e.adminAPI.ListJournal(as(e.admin), &registryv1.ListJournalRequest{ObjectType: "identifier", ObjectId: "ALICE.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, en := range j.Entries {
		actions = append(actions, en.Action)
		if en.Actor != "agent:"+a.agent.Id || en.Time == nil {
			t.Fatalf("journal entry %v: wrong actor or no time", en)
		}
	}
	if strings.Join(actions, ",") != "identifier.register,identifier.update,identifier.delete" {
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

	// At the end of the redemption period the purge retires the identity for good; a new
	// registration of the name gets a new one.
	e.clock.Advance(del.PurgeTime.AsTime().Sub(e.clock.Now()) + time.Second)
	if n, err := e.svc.SweepPurges(context.Background()); err != nil || n != 1 {
		t.Fatalf("SweepPurges = %d, %v; want 1", n, err)
	}
	_, err = e.registry.GetIdentifier(a.ctx(), &registryv1.GetIdentifierRequest{Identifier: id.Name})
	wantStatus(t, err, codes.NotFound, "IDENTIFIER_NOT_FOUND")
	if n := e.countRows("identities", "retire_time IS NOT NULL"); n != 1 {
		t.Fatalf("%d retired identities after the purge, want 1", n)
	}
	e.register(a, "alice.example.test")
	if n := e.countRows("identities", ""); n != 2 {
		t.Fatalf("%d identities after re-registration, want 2", n)
	}
}

func TestChallengeDNSOutcomes(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(e *env, c *registryv1.Challenge)
		quorum int
		want   registryv1.Challenge_Status
		reason string
		check  func(t *testing.T, e *env, c *registryv1.Challenge)
	}{
		{name: "txt missing", setup: func(e *env, c *registryv1.Challenge) {}, want: registryv1.Challenge_STATUS_PENDING, reason: "DNS_RECORD_MISSING"},
		{name: "wrong value", setup: func(e *env, c *registryv1.Challenge) {
			e.ns[0].SetTXT(c.RecordName, "not-the-value")
			e.ns[1].SetTXT(c.RecordName, "not-the-value")
		}, want: registryv1.Challenge_STATUS_PENDING, reason: "DNS_RECORD_MISMATCH", check: func(t *testing.T, e *env, c *registryv1.Challenge) {
			if !strings.Contains(c.Problem.Detail, "not-the-value") {
				t.Errorf("problem detail %q does not say what was found", c.Problem.Detail)
			}
		}},
		{name: "nameservers disagree", setup: func(e *env, c *registryv1.Challenge) { e.publish(c, 0) },
			want: registryv1.Challenge_STATUS_PENDING, reason: "DNS_SERVERS_DISAGREE"},
		{name: "nameservers disagree, quorum one", quorum: 1, setup: func(e *env, c *registryv1.Challenge) { e.publish(c, 0) },
			want: registryv1.Challenge_STATUS_VALID},
		{name: "delegated by CNAME", setup: func(e *env, c *registryv1.Challenge) {
			for _, ns := range e.ns {
				ns.Add(c.RecordName + " 60 IN CNAME alice.delegated.test.")
				ns.SetTXT("alice.delegated.test.", c.RecordValue)
			}
		}, want: registryv1.Challenge_STATUS_VALID},
		{name: "UDP truncated, TCP answers", setup: func(e *env, c *registryv1.Challenge) {
			e.publish(c)
			e.ns[0].SetTruncate(true)
		}, want: registryv1.Challenge_STATUS_VALID, check: func(t *testing.T, e *env, c *registryv1.Challenge) {
			var tcp bool
			for _, q := range e.ns[0].Queries() {
				tcp = tcp || (q.Transport == "tcp" && q.Type == "TXT")
			}
			if !tcp {
				t.Error("the truncated answer was not retried over TCP")
			}
		}},
		{name: "one nameserver silent", setup: func(e *env, c *registryv1.Challenge) {
			e.publish(c)
			e.ns[1].SetSilent(true)
		}, want: registryv1.Challenge_STATUS_VALID},
		{name: "no nameserver answers", setup: func(e *env, c *registryv1.Challenge) {
			e.publish(c)
			e.ns[0].SetSilent(true)
			e.ns[1].SetSilent(true)
		}, want: registryv1.Challenge_STATUS_PENDING, reason: "DNS_TIMEOUT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{quorum: tt.quorum})
			a := e.newAgent("alpha")
			c, err := e.registry.CreateChallenge(a.ctx(), &registryv1.CreateChallengeRequest{Identifier: "alice.example.test", Purpose: registryv1.Purpose_PURPOSE_REGISTER})
			if err != nil {
				t.Fatal(err)
			}
			tt.setup(e, c)
			ctx, cancel := context.WithTimeout(a.ctx(), 10*time.Second)
			defer cancel()
			v, err := e.registry.VerifyChallenge(ctx, &registryv1.VerifyChallengeRequest{Id: c.Id})
			if err != nil {
				t.Fatal(err)
			}
			if v.Status != tt.want {
				t.Fatalf("status %v (problem %v), want %v", v.Status, v.Problem, tt.want)
			}
			if tt.reason == "" {
				if v.Problem != nil {
					t.Fatalf("valid challenge has problem %v", v.Problem)
				}
			} else {
				if v.Problem.GetReason() != tt.reason {
					t.Fatalf("problem %v, want reason %s", v.Problem, tt.reason)
				}
				if len(v.Problem.Nameservers) == 0 || v.Problem.Detail == "" {
					t.Fatalf("problem %v does not say what each nameserver answered", v.Problem)
				}
				asked := map[string]bool{}
				for _, q := range v.Problem.Nameservers {
					asked[q.Address] = true
				}
				for _, ns := range e.ns {
					if !asked[ns.Addr] {
						t.Fatalf("problem does not list nameserver %s: %v", ns.Addr, v.Problem.Nameservers)
					}
				}
			}
			if tt.check != nil {
				tt.check(t, e, v)
			}
		})
	}
}

func TestChallengeAttemptsRunOut(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := e.newAgent("alpha")
	c, err := e.registry.CreateChallenge(a.ctx(), &registryv1.CreateChallengeRequest{Identifier: "alice.example.test", Purpose: registryv1.Purpose_PURPOSE_REGISTER})
	if err != nil {
		t.Fatal(err)
	}
	var v *registryv1.Challenge
	for range 3 { // ChallengeMaxAttempts in the test env
		if v, err = e.registry.VerifyChallenge(a.ctx(), &registryv1.VerifyChallengeRequest{Id: c.Id}); err != nil {
			t.Fatal(err)
		}
	}
	if v.Status != registryv1.Challenge_STATUS_INVALID || v.Attempts != 3 {
		t.Fatalf("after 3 failed checks: %v", v)
	}
	e.publish(c)
	_, err = e.registry.VerifyChallenge(a.ctx(), &registryv1.VerifyChallengeRequest{Id: c.Id})
	wantStatus(t, err, codes.FailedPrecondition, "CHALLENGE_INVALID")
}

func TestChallengeMisuse(t *testing.T) {
	e := newEnv(t, envOptions{})
	a, b := e.newAgent("alpha"), e.newAgent("beta")

	t.Run("expired", func(t *testing.T) {
		c := e.validChallenge(a, "expired.example.test")
		e.clock.Advance(2 * time.Hour)
		_, err := e.registry.RegisterIdentifier(a.ctx(), &registryv1.RegisterIdentifierRequest{ChallengeId: c.Id})
		wantStatus(t, err, codes.FailedPrecondition, "CHALLENGE_EXPIRED")
		_, err = e.registry.VerifyChallenge(a.ctx(), &registryv1.VerifyChallengeRequest{Id: c.Id})
		wantStatus(t, err, codes.FailedPrecondition, "CHALLENGE_EXPIRED")
		got, err := e.registry.GetChallenge(a.ctx(), &registryv1.GetChallengeRequest{Id: c.Id})
		if err != nil || got.Status != registryv1.Challenge_STATUS_EXPIRED {
			t.Fatalf("GetChallenge = %v, %v; want EXPIRED", got, err)
		}
	})
	t.Run("consumed", func(t *testing.T) {
		c := e.validChallenge(a, "consumed.example.test")
		if _, err := e.registry.RegisterIdentifier(a.ctx(), &registryv1.RegisterIdentifierRequest{ChallengeId: c.Id}); err != nil {
			t.Fatal(err)
		}
		_, err := e.registry.RegisterIdentifier(a.ctx(), &registryv1.RegisterIdentifierRequest{ChallengeId: c.Id})
		wantStatus(t, err, codes.FailedPrecondition, "CHALLENGE_CONSUMED")
		_, err = e.registry.VerifyChallenge(a.ctx(), &registryv1.VerifyChallengeRequest{Id: c.Id})
		wantStatus(t, err, codes.FailedPrecondition, "CHALLENGE_CONSUMED")
	})
	t.Run("not yet verified", func(t *testing.T) {
		c, err := e.registry.CreateChallenge(a.ctx(), &registryv1.CreateChallengeRequest{Identifier: "pending.example.test", Purpose: registryv1.Purpose_PURPOSE_REGISTER})
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.registry.RegisterIdentifier(a.ctx(), &registryv1.RegisterIdentifierRequest{ChallengeId: c.Id})
		wantStatus(t, err, codes.FailedPrecondition, "CHALLENGE_NOT_VALID")
	})
	t.Run("another agent's", func(t *testing.T) {
		c := e.validChallenge(a, "theirs.example.test")
		_, err := e.registry.GetChallenge(b.ctx(), &registryv1.GetChallengeRequest{Id: c.Id})
		wantStatus(t, err, codes.NotFound, "CHALLENGE_NOT_FOUND")
		_, err = e.registry.VerifyChallenge(b.ctx(), &registryv1.VerifyChallengeRequest{Id: c.Id})
		wantStatus(t, err, codes.NotFound, "CHALLENGE_NOT_FOUND")
		_, err = e.registry.RegisterIdentifier(b.ctx(), &registryv1.RegisterIdentifierRequest{ChallengeId: c.Id})
		wantStatus(t, err, codes.NotFound, "CHALLENGE_NOT_FOUND")
	})
	t.Run("taken name", func(t *testing.T) {
		e.register(a, "taken.example.test")
		_, err := e.registry.CreateChallenge(b.ctx(), &registryv1.CreateChallengeRequest{Identifier: "taken.example.test", Purpose: registryv1.Purpose_PURPOSE_REGISTER})
		wantStatus(t, err, codes.AlreadyExists, "IDENTIFIER_TAKEN")
	})
	t.Run("transfer of a name not registered", func(t *testing.T) {
		_, err := e.registry.CreateChallenge(a.ctx(), &registryv1.CreateChallengeRequest{Identifier: "move.example.test", Purpose: registryv1.Purpose_PURPOSE_TRANSFER})
		wantStatus(t, err, codes.NotFound, "IDENTIFIER_NOT_FOUND")
	})
	t.Run("no purpose", func(t *testing.T) {
		_, err := e.registry.CreateChallenge(a.ctx(), &registryv1.CreateChallengeRequest{Identifier: "nopurpose.example.test"})
		wantStatus(t, err, codes.InvalidArgument, "PURPOSE_REQUIRED")
	})
}

func TestMalformedIdentifiers(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := e.newAgent("alpha")
	tests := []struct{ in, reason string }{
		{"", "IDENTIFIER_EMPTY"},
		{"com", "IDENTIFIER_TOO_FEW_LABELS"},
		{"co.uk", "IDENTIFIER_PUBLIC_SUFFIX"},
		{"*.example.test", "IDENTIFIER_WILDCARD"},
		{"192.0.2.1", "IDENTIFIER_IP_LITERAL"},
		{"[2001:db8::1]", "IDENTIFIER_IP_LITERAL"},
		{strings.Repeat("a", 64) + ".example.test", "IDENTIFIER_LABEL_TOO_LONG"},
		{"alice..example.test", "IDENTIFIER_MALFORMED"},
		{"alice.example.test..", "IDENTIFIER_MALFORMED"},
		{"ali ce.example.test", "IDENTIFIER_MALFORMED"},
		{"under_score.example.test", "IDENTIFIER_MALFORMED"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := e.registry.CreateChallenge(a.ctx(), &registryv1.CreateChallengeRequest{Identifier: tt.in, Purpose: registryv1.Purpose_PURPOSE_REGISTER})
			wantStatus(t, err, codes.InvalidArgument, tt.reason)
		})
	}
	// Accepted forms all land on one canonical name.
	for _, in := range []string{"BÜCHER.example.test", "bücher.example.test.", "xn--bcher-kva.EXAMPLE.test"} {
		c, err := e.registry.CreateChallenge(a.ctx(), &registryv1.CreateChallengeRequest{Identifier: in, Purpose: registryv1.Purpose_PURPOSE_REGISTER})
		if err != nil || c.Identifier != "xn--bcher-kva.example.test" {
			t.Fatalf("CreateChallenge(%q) = %v, %v", in, c.GetIdentifier(), err)
		}
	}
	reg := e.register(a, "Bücher.Example.Test")
	if reg.UnicodeName != "bücher.example.test" || reg.Name != "xn--bcher-kva.example.test" {
		t.Fatalf("registered %v", reg)
	}
}

func TestAgentIsolation(t *testing.T) {
	e := newEnv(t, envOptions{})
	a, b := e.newAgent("alpha"), e.newAgent("beta")
	e.register(a, "alice.example.test")

	_, err := e.registry.GetIdentifier(b.ctx(), &registryv1.GetIdentifierRequest{Identifier: "alice.example.test"})
	wantStatus(t, err, codes.NotFound, "IDENTIFIER_NOT_FOUND")
	_, err = e.registry.UpdateIdentifier(b.ctx(), &registryv1.UpdateIdentifierRequest{
		Identifier: &registryv1.Identifier{Name: "alice.example.test", ClaimsEndpoint: "https://evil.test/"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"claims_endpoint"}},
	})
	wantStatus(t, err, codes.NotFound, "IDENTIFIER_NOT_FOUND")
	_, err = e.registry.DeleteIdentifier(b.ctx(), &registryv1.DeleteIdentifierRequest{Identifier: "alice.example.test"})
	wantStatus(t, err, codes.NotFound, "IDENTIFIER_NOT_FOUND")
	list, err := e.registry.ListIdentifiers(b.ctx(), &registryv1.ListIdentifiersRequest{})
	if err != nil || len(list.Identifiers) != 0 {
		t.Fatalf("beta lists %v, %v", list, err)
	}
	// Nothing changed for alpha.
	got, err := e.registry.GetIdentifier(a.ctx(), &registryv1.GetIdentifierRequest{Identifier: "alice.example.test"})
	if err != nil || got.ClaimsEndpoint != "" || got.AgentId != a.agent.Id {
		t.Fatalf("alpha's identifier after beta's attempts: %v, %v", got, err)
	}
	// Operators see any agent's identifier.
	if got, err := e.adminAPI.GetIdentifier(as(e.admin), &registryv1.GetIdentifierRequest{Identifier: "alice.example.test"}); err != nil || got.AgentId != a.agent.Id {
		t.Fatalf("admin GetIdentifier = %v, %v", got, err)
	}
}

func TestClientStatuses(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := e.newAgent("alpha")
	e.register(a, "alice.example.test")
	mask := func(p ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: p} }
	lock := func(st ...registryv1.IdentifierStatus) (*registryv1.Identifier, error) {
		return e.registry.UpdateIdentifier(a.ctx(), &registryv1.UpdateIdentifierRequest{
			Identifier: &registryv1.Identifier{Name: "alice.example.test", Statuses: st}, UpdateMask: mask("statuses"),
		})
	}
	got, err := lock(registryv1.IdentifierStatus_IDENTIFIER_STATUS_CLIENT_DELETE_PROHIBITED, registryv1.IdentifierStatus_IDENTIFIER_STATUS_CLIENT_UPDATE_PROHIBITED)
	if err != nil || len(got.Statuses) != 2 {
		t.Fatalf("lock = %v, %v", got, err)
	}
	_, err = e.registry.DeleteIdentifier(a.ctx(), &registryv1.DeleteIdentifierRequest{Identifier: "alice.example.test"})
	wantStatus(t, err, codes.FailedPrecondition, "IDENTIFIER_DELETE_PROHIBITED")
	_, err = e.registry.UpdateIdentifier(a.ctx(), &registryv1.UpdateIdentifierRequest{
		Identifier: &registryv1.Identifier{Name: "alice.example.test", ClaimsEndpoint: "https://x.test/"}, UpdateMask: mask("claims_endpoint"),
	})
	wantStatus(t, err, codes.FailedPrecondition, "IDENTIFIER_UPDATE_PROHIBITED")
	_, err = lock(registryv1.IdentifierStatus_IDENTIFIER_STATUS_SERVER_HOLD)
	wantStatus(t, err, codes.PermissionDenied, "STATUS_NOT_CLIENT_SETTABLE")
	// Under clientUpdateProhibited the only change allowed is removing it, on its own.
	_, err = lock()
	wantStatus(t, err, codes.FailedPrecondition, "IDENTIFIER_UPDATE_PROHIBITED")
	if got, err = lock(registryv1.IdentifierStatus_IDENTIFIER_STATUS_CLIENT_DELETE_PROHIBITED); err != nil || len(got.Statuses) != 1 {
		t.Fatalf("removing clientUpdateProhibited = %v, %v", got, err)
	}
	if got, err = lock(); err != nil || len(got.Statuses) != 1 || got.Statuses[0] != registryv1.IdentifierStatus_IDENTIFIER_STATUS_OK {
		t.Fatalf("unlock = %v, %v", got, err)
	}
	_, err = e.registry.UpdateIdentifier(a.ctx(), &registryv1.UpdateIdentifierRequest{
		Identifier: &registryv1.Identifier{Name: "alice.example.test"}, UpdateMask: mask("name"),
	})
	wantStatus(t, err, codes.InvalidArgument, "UPDATE_MASK_INVALID")
	if _, err := e.registry.DeleteIdentifier(a.ctx(), &registryv1.DeleteIdentifierRequest{Identifier: "alice.example.test"}); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentRegistrationsOneWinner(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) { testConcurrentRegistrations(t, b.DSN) })
	}
}

func testConcurrentRegistrations(t *testing.T, dsn func(testing.TB) string) {
	e := newEnv(t, envOptions{dsn: dsn})
	const n = 32
	agents := make([]testAgent, n)
	challenges := make([]*registryv1.Challenge, n)
	for k := range agents {
		agents[k] = e.newAgent("agent" + string(rune('a'+k%26)) + string(rune('a'+k/26)))
		challenges[k] = e.validChallenge(agents[k], "contested.example.test")
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for k := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[k] = e.registry.RegisterIdentifier(agents[k].ctx(), &registryv1.RegisterIdentifierRequest{ChallengeId: challenges[k].Id})
		}()
	}
	close(start)
	wg.Wait()
	winners := 0
	for _, err := range errs {
		if err == nil {
			winners++
			continue
		}
		wantStatus(t, err, codes.AlreadyExists, "IDENTIFIER_TAKEN")
	}
	if winners != 1 {
		t.Fatalf("%d registrations won, want exactly 1", winners)
	}
	if n := e.countRows("identifiers", "name = ?", "contested.example.test"); n != 1 {
		t.Fatalf("%d identifier rows, want 1", n)
	}
	if n := e.countRows("identities", ""); n != 1 {
		t.Fatalf("%d identities, want 1 (losers must leave nothing behind)", n)
	}
	if n := e.countRows("challenges", "status = ?", "consumed"); n != 1 {
		t.Fatalf("%d consumed challenges, want 1", n)
	}
}

func TestListIdentifiersPagination(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := e.newAgent("alpha")
	names := []string{"a1.example.test", "a2.example.test", "a3.example.test", "a4.example.test", "a5.example.test"}
	for _, n := range names {
		e.register(a, n)
	}
	var got []string
	token := ""
	pages := 0
	for {
		resp, err := e.registry.ListIdentifiers(a.ctx(), &registryv1.ListIdentifiersRequest{PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, i := range resp.Identifiers {
			got = append(got, i.Name)
		}
		if token = resp.NextPageToken; token == "" {
			break
		}
	}
	if pages != 3 || strings.Join(got, " ") != strings.Join(names, " ") {
		t.Fatalf("%d pages: %v", pages, got)
	}
	_, err := e.registry.ListIdentifiers(a.ctx(), &registryv1.ListIdentifiersRequest{PageToken: "garbage!"})
	wantStatus(t, err, codes.InvalidArgument, "INVALID_PAGE_TOKEN")
	_, err = e.registry.ListIdentifiers(a.ctx(), &registryv1.ListIdentifiersRequest{PageSize: -1})
	wantStatus(t, err, codes.InvalidArgument, "INVALID_PAGE_SIZE")
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
