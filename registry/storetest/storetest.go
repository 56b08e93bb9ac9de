// Package storetest is the conformance suite of registry.Store: every backend runs it, so they
// all behave alike where the registry relies on them.
package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/dnsverify"
	"github.com/id4me/id4me-registry/registry"
)

// Option adapts Run to a backend.
type Option func(*options)

type options struct {
	concurrentWriters bool
}

// ConcurrentWriters declares that the store runs write transactions side by side, locking
// rows rather than the database (PostgreSQL). Run then also runs the tests that hold one
// transaction open while another claims work; a store with one writer at a time (SQLite)
// would keep the second waiting for the first, which waits for the second.
func ConcurrentWriters() Option { return func(o *options) { o.concurrentWriters = true } }

// Run runs the suite. open returns a new, empty store for one subtest and arranges for its
// closing (t.Cleanup); it is called from parallel subtests.
func Run(t *testing.T, open func(t *testing.T) registry.Store, opts ...Option) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, s registry.Store)
	}{
		{"Agents", testAgents},
		{"ListAgents", testListAgents},
		{"Credentials", testCredentials},
		{"LockOperatorCredentials", testLockOperatorCredentials},
		{"Challenges", testChallenges},
		{"ConcurrentChallengeUse", testConcurrentChallengeUse},
		{"Identities", testIdentities},
		{"Identifiers", testIdentifiers},
		{"ListIdentifiers", testListIdentifiers},
		{"Journal", testJournal},
		{"TimePrecision", testTimePrecision},
		{"TxRollback", testTxRollback},
		{"ConcurrentRegistration", testConcurrentRegistration},
		{"LinkGenerations", testLinkGenerations},
		{"IdentifierDNSNames", testIdentifierDNSNames},
		{"ConcurrentDNSNameRegistration", testConcurrentDNSNameRegistration},
		{"IdentifierLifecycle", testIdentifierLifecycle},
		{"OpenIDState", testOpenIDState},
		{"Transfers", testTransfers},
		{"ListTransfers", testListTransfers},
		{"Events", testEvents},
		{"ConcurrentEvents", testConcurrentEvents},
		{"ClaimDueTransfers", testClaimDueTransfers},
		{"ClaimDuePurges", testClaimDuePurges},
		{"ClaimOpenIDChecks", testClaimOpenIDChecks},
		{"DeleteExpiredChallenges", testDeleteExpiredChallenges},
		{"DeleteAckedEvents", testDeleteAckedEvents},
		{"RequestOutcomes", testRequestOutcomes},
		{"DeleteRequestOutcomes", testDeleteRequestOutcomes},
		{"ConcurrentClaims", testConcurrentClaims},
		{"HeldClaims", func(t *testing.T, s registry.Store) {
			if !o.concurrentWriters {
				t.Skip("the store runs one write transaction at a time")
			}
			testHeldClaims(t, s)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

// t0 has nanoseconds and a zone other than UTC: stores keep microseconds and answer in UTC.
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.FixedZone("CET", 3600))

// norm is what a store gives back for t: UTC, truncated to the microsecond.
func norm(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

func inTx(t *testing.T, s registry.Store, fn func(tx registry.Tx) error) {
	t.Helper()
	if err := s.Tx(t.Context(), fn); err != nil {
		t.Fatalf("Tx: %v", err)
	}
}

// wantErr fails unless err is a *registry.Error of kind and, if reason is not empty, reason.
func wantErr(t *testing.T, err error, kind registry.Kind, reason registry.Reason) {
	t.Helper()
	var e *registry.Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v, want a *registry.Error of kind %v %s", err, kind, reason)
	}
	if e.Kind != kind || (reason != "" && e.Reason != reason) {
		t.Fatalf("error = %v (kind %v, reason %s), want kind %v, reason %s", err, e.Kind, e.Reason, kind, reason)
	}
}

func wantEqual[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func newAgent(id string, spki ...string) registry.Agent {
	return registry.Agent{
		ID:                   id,
		DisplayName:          "Agent " + id,
		ClaimsEndpoint:       "https://" + id + ".example/userinfo",
		Issuer:               "https://" + id + ".example",
		AccountKeyJWK:        `{"kty":"OKP","crv":"Ed25519","x":"` + id + `"}`,
		AccountKeyThumbprint: "thumb-" + id,
		State:                registry.AgentActive,
		ClientCertSPKI:       spki,
		CreateTime:           t0,
		UpdateTime:           t0,
		Version:              1,
	}
}

func normAgent(a registry.Agent) registry.Agent {
	a.CreateTime, a.UpdateTime = norm(a.CreateTime), norm(a.UpdateTime)
	a.ClientCertSPKI = slices.Clone(a.ClientCertSPKI)
	slices.Sort(a.ClientCertSPKI)
	a.ClientCertSPKI = slices.Compact(a.ClientCertSPKI)
	if len(a.ClientCertSPKI) == 0 {
		a.ClientCertSPKI = nil
	}
	return a
}

func newIdentity(id string) registry.Identity {
	return registry.Identity{ID: id, SubjectSeed: "seed-" + id, CreateTime: t0}
}

func normIdentity(i registry.Identity) registry.Identity {
	i.CreateTime, i.RetireTime = norm(i.CreateTime), norm(i.RetireTime)
	return i
}

func newIdentifier(name, agentID, identityID string) registry.Identifier {
	return registry.Identifier{
		Name:        name,
		UnicodeName: name,
		AgentID:     agentID,
		IdentityID:  identityID,
		CreateTime:  t0,
		UpdateTime:  t0,
		Version:     1,
	}
}

// normIdentifier returns what a store gives back for an identifier created as i: times
// normalized, a new identifier with no next _openid check due at its creation, and one with no
// DNS name its name as DNS name.
func normIdentifier(i registry.Identifier) registry.Identifier {
	if i.DNSName == "" {
		i.DNSName = i.Name
	}
	i.CreateTime, i.UpdateTime = norm(i.CreateTime), norm(i.UpdateTime)
	i.DeleteTime, i.PurgeTime = norm(i.DeleteTime), norm(i.PurgeTime)
	if i.OpenID.NextCheck.IsZero() {
		i.OpenID.NextCheck = i.CreateTime
	}
	i.OpenID.CheckTime, i.OpenID.NextCheck = norm(i.OpenID.CheckTime), norm(i.OpenID.NextCheck)
	if len(i.Statuses) == 0 {
		i.Statuses = nil
	}
	return i
}

func normCredential(c registry.Credential) registry.Credential {
	c.CreateTime, c.RevokeTime = norm(c.CreateTime), norm(c.RevokeTime)
	return c
}

// wantChallenge compares challenges; problems are compared as JSON, the form they are kept in.
func wantChallenge(t *testing.T, got, want registry.Challenge) {
	t.Helper()
	gp, _ := json.Marshal(got.Problem)
	wp, _ := json.Marshal(want.Problem)
	if string(gp) != string(wp) {
		t.Fatalf("challenge problem:\n got %s\nwant %s", gp, wp)
	}
	got.Problem, want.Problem = nil, nil
	want.CreateTime, want.ExpireTime, want.ValidateTime = norm(want.CreateTime), norm(want.ExpireTime), norm(want.ValidateTime)
	wantEqual(t, "challenge", got, want)
}

// setup creates agents (with no certificates) and identities in one transaction.
func setup(t *testing.T, s registry.Store, agents []string, identities ...string) {
	t.Helper()
	inTx(t, s, func(tx registry.Tx) error {
		for _, id := range agents {
			if err := tx.CreateAgent(t.Context(), newAgent(id)); err != nil {
				return err
			}
		}
		for _, id := range identities {
			if err := tx.CreateIdentity(t.Context(), newIdentity(id)); err != nil {
				return err
			}
		}
		return nil
	})
}

func testAgents(t *testing.T, s registry.Store) {
	ctx := t.Context()
	a1 := newAgent("a1", "cc02", "cc01")
	a2 := newAgent("a2", "cc03")
	inTx(t, s, func(tx registry.Tx) error {
		if err := tx.CreateAgent(ctx, a1); err != nil {
			return err
		}
		if err := tx.CreateAgent(ctx, a2); err != nil {
			return err
		}
		// A transaction reads its own writes.
		got, err := tx.GetAgent(ctx, "a1")
		if err != nil {
			return err
		}
		wantEqual(t, "GetAgent in the creating Tx", got, normAgent(a1))
		list, err := tx.ListAgents(ctx, "", 10)
		if err != nil {
			return err
		}
		wantEqual(t, "ListAgents in the creating Tx", list, []registry.Agent{normAgent(a1), normAgent(a2)})
		return nil
	})
	// A key listed twice is pinned once.
	a4 := newAgent("a4", "cc06", "cc05", "cc06")
	inTx(t, s, func(tx registry.Tx) error { return tx.CreateAgent(ctx, a4) })
	if got, err := s.GetAgent(ctx, "a4"); err != nil || !slices.Equal(got.ClientCertSPKI, []string{"cc05", "cc06"}) {
		t.Fatalf("GetAgent(a4) pins = %q, %v; want [cc05 cc06]", got.ClientCertSPKI, err)
	}
	got, err := s.GetAgent(ctx, "a1")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "GetAgent", got, normAgent(a1))

	_, err = s.GetAgent(ctx, "missing")
	wantErr(t, err, registry.KindNotFound, "AGENT_NOT_FOUND")

	err = s.Tx(ctx, func(tx registry.Tx) error { return tx.CreateAgent(ctx, newAgent("a1")) })
	wantErr(t, err, registry.KindAlreadyExists, "OBJECT_EXISTS")
	// A client certificate key authenticates one agent only.
	err = s.Tx(ctx, func(tx registry.Tx) error { return tx.CreateAgent(ctx, newAgent("a3", "cc01")) })
	wantErr(t, err, registry.KindAlreadyExists, "OBJECT_EXISTS")
	_, err = s.GetAgent(ctx, "a3")
	wantErr(t, err, registry.KindNotFound, "AGENT_NOT_FOUND")

	for spki, want := range map[string]registry.Agent{"cc01": a1, "cc02": a1, "cc03": a2} {
		got, err := s.FindAgentByCertSPKI(ctx, spki)
		if err != nil {
			t.Fatalf("FindAgentByCertSPKI(%s): %v", spki, err)
		}
		wantEqual(t, "FindAgentByCertSPKI("+spki+")", got, normAgent(want))
	}
	_, err = s.FindAgentByCertSPKI(ctx, "cc99")
	wantErr(t, err, registry.KindNotFound, "AGENT_NOT_FOUND")

	// An update replaces the pinned certificates.
	u := a1
	u.DisplayName, u.State = "Renamed", registry.AgentSuspended
	u.ClaimsEndpoint, u.Issuer = "https://new.example/userinfo", "https://new.example"
	u.AccountKeyJWK, u.AccountKeyThumbprint = `{"kty":"EC"}`, "thumb-new"
	u.ClientCertSPKI = []string{"cc04", "cc01"}
	u.UpdateTime = t0.Add(time.Hour)
	u.Version = 2
	inTx(t, s, func(tx registry.Tx) error { return tx.UpdateAgent(ctx, u) })
	got, err = s.GetAgent(ctx, "a1")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "GetAgent after update", got, normAgent(u))
	_, err = s.FindAgentByCertSPKI(ctx, "cc02")
	wantErr(t, err, registry.KindNotFound, "AGENT_NOT_FOUND")
	if got, err := s.FindAgentByCertSPKI(ctx, "cc04"); err != nil || got.ID != "a1" {
		t.Fatalf("FindAgentByCertSPKI(cc04) = %q, %v; want a1", got.ID, err)
	}

	// An update made from an old version loses.
	stale := a1
	stale.Version = 2
	err = s.Tx(ctx, func(tx registry.Tx) error { return tx.UpdateAgent(ctx, stale) })
	wantErr(t, err, registry.KindAborted, "CONCURRENT_UPDATE")

	missing := newAgent("missing")
	missing.Version = 2
	err = s.Tx(ctx, func(tx registry.Tx) error { return tx.UpdateAgent(ctx, missing) })
	wantErr(t, err, registry.KindNotFound, "AGENT_NOT_FOUND")

	// Pinning another agent's certificate fails and changes nothing.
	steal := u
	steal.ClientCertSPKI = []string{"cc03"}
	steal.Version = 3
	err = s.Tx(ctx, func(tx registry.Tx) error { return tx.UpdateAgent(ctx, steal) })
	wantErr(t, err, registry.KindAlreadyExists, "OBJECT_EXISTS")
	got, err = s.GetAgent(ctx, "a1")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "GetAgent after a failed update", got, normAgent(u))
	for spki, want := range map[string]string{"cc01": "a1", "cc04": "a1", "cc03": "a2"} {
		if got, err := s.FindAgentByCertSPKI(ctx, spki); err != nil || got.ID != want {
			t.Fatalf("after a failed update: FindAgentByCertSPKI(%s) = %q, %v; want %s", spki, got.ID, err, want)
		}
	}

	// Unpinning every certificate.
	none := u
	none.ClientCertSPKI = nil
	none.Version = 3
	inTx(t, s, func(tx registry.Tx) error { return tx.UpdateAgent(ctx, none) })
	got, err = s.GetAgent(ctx, "a1")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "GetAgent without certificates", got, normAgent(none))
	// The freed key may be pinned by another agent.
	a2b := a2
	a2b.ClientCertSPKI = []string{"cc03", "cc04"}
	a2b.Version = 2
	inTx(t, s, func(tx registry.Tx) error { return tx.UpdateAgent(ctx, a2b) })
	if got, err := s.FindAgentByCertSPKI(ctx, "cc04"); err != nil || got.ID != "a2" {
		t.Fatalf("FindAgentByCertSPKI(cc04) = %q, %v; want a2", got.ID, err)
	}
}

func testListAgents(t *testing.T, s registry.Store) {
	ctx := t.Context()
	order := []int{7, 2, 9, 0, 5, 3, 8, 1, 6, 4}
	var want []registry.Agent
	inTx(t, s, func(tx registry.Tx) error {
		for _, i := range order {
			a := newAgent(fmt.Sprintf("agent-%02d", i), fmt.Sprintf("spki-%02d-b", i), fmt.Sprintf("spki-%02d-a", i))
			if err := tx.CreateAgent(ctx, a); err != nil {
				return err
			}
			want = append(want, normAgent(a))
		}
		return nil
	})
	slices.SortFunc(want, func(a, b registry.Agent) int { return strings.Compare(a.ID, b.ID) })

	var got []registry.Agent
	after := ""
	for pages := 0; ; pages++ {
		if pages > len(want) {
			t.Fatal("ListAgents does not end")
		}
		page, err := s.ListAgents(ctx, after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 3 {
			t.Fatalf("ListAgents returned %d agents, limit 3", len(page))
		}
		if len(page) == 0 {
			break
		}
		got = append(got, page...)
		after = page[len(page)-1].ID
	}
	wantEqual(t, "agents listed page by page", got, want)

	page, err := s.ListAgents(ctx, "agent-04", 2)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "ListAgents after agent-04", page, want[5:7])
}

func testCredentials(t *testing.T, s registry.Store) {
	ctx := t.Context()
	setup(t, s, []string{"a1", "a2"})
	// Created out of order; listed by creation time, which differ by a microsecond.
	later := registry.Credential{ID: "tok-later", AgentID: "a1", Description: "CI", SecretHash: []byte{1, 2, 3}, CreateTime: t0.Add(time.Microsecond)}
	earlier := registry.Credential{ID: "tok-earlier", AgentID: "a1", Description: "laptop", SecretHash: []byte{4, 5, 6}, CreateTime: t0}
	op := registry.Credential{ID: "op-1", Description: "bootstrap", SecretHash: []byte{7}, CreateTime: t0}
	inTx(t, s, func(tx registry.Tx) error {
		for _, c := range []registry.Credential{later, earlier, op} {
			if err := tx.CreateCredential(ctx, c); err != nil {
				return err
			}
		}
		return nil
	})

	got, err := s.GetCredential(ctx, "tok-later")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "GetCredential", got, normCredential(later))
	_, err = s.GetCredential(ctx, "missing")
	wantErr(t, err, registry.KindNotFound, "CREDENTIAL_NOT_FOUND")

	list, err := s.ListCredentials(ctx, "a1")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "ListCredentials(a1)", list, []registry.Credential{normCredential(earlier), normCredential(later)})
	list, err = s.ListCredentials(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "ListCredentials of operators", list, []registry.Credential{normCredential(op)})
	if list, err := s.ListCredentials(ctx, "a2"); err != nil || len(list) != 0 {
		t.Fatalf("ListCredentials(a2) = %v, %v; want none", list, err)
	}

	err = s.Tx(ctx, func(tx registry.Tx) error { return tx.CreateCredential(ctx, earlier) })
	wantErr(t, err, registry.KindAlreadyExists, "OBJECT_EXISTS")

	revoked := t0.Add(time.Hour + 123456789)
	inTx(t, s, func(tx registry.Tx) error { return tx.RevokeCredential(ctx, "tok-earlier", revoked) })
	got, err = s.GetCredential(ctx, "tok-earlier")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Revoked() || !got.RevokeTime.Equal(norm(revoked)) {
		t.Fatalf("revoke time = %v, want %v", got.RevokeTime, norm(revoked))
	}
	// Revoking twice fails and keeps the first revoke time.
	if err := s.Tx(ctx, func(tx registry.Tx) error { return tx.RevokeCredential(ctx, "tok-earlier", revoked.Add(time.Hour)) }); err == nil {
		t.Fatal("revoking a revoked credential succeeded")
	}
	if got, err := s.GetCredential(ctx, "tok-earlier"); err != nil || !got.RevokeTime.Equal(norm(revoked)) {
		t.Fatalf("after a second revocation: revoke time = %v, %v; want %v", got.RevokeTime, err, norm(revoked))
	}
	err = s.Tx(ctx, func(tx registry.Tx) error { return tx.RevokeCredential(ctx, "missing", revoked) })
	wantErr(t, err, registry.KindNotFound, "CREDENTIAL_NOT_FOUND")
}

func newChallenge(id, agentID string) registry.Challenge {
	return registry.Challenge{
		ID:               id,
		AgentID:          agentID,
		Identifier:       "alice.example",
		Purpose:          registry.PurposeRegister,
		Token:            "tok-" + id,
		KeyAuthorization: "tok-" + id + ".thumb",
		Status:           registry.ChallengePending,
		CreateTime:       t0,
		ExpireTime:       t0.Add(time.Hour),
	}
}

func testChallenges(t *testing.T, s registry.Store) {
	ctx := t.Context()
	setup(t, s, []string{"a1"})
	c := newChallenge("ch1", "a1")
	inTx(t, s, func(tx registry.Tx) error { return tx.CreateChallenge(ctx, c) })
	got, err := s.GetChallenge(ctx, "ch1")
	if err != nil {
		t.Fatal(err)
	}
	wantChallenge(t, got, c)
	// A transfer challenge keeps the sponsor it was made under.
	tc := newChallenge("ch-transfer", "a1")
	tc.Purpose, tc.SponsorAgentID = registry.PurposeTransfer, "a0"
	inTx(t, s, func(tx registry.Tx) error { return tx.CreateChallenge(ctx, tc) })
	if got, err := s.GetChallenge(ctx, tc.ID); err != nil || got.Purpose != registry.PurposeTransfer || got.SponsorAgentID != "a0" {
		t.Fatalf("transfer challenge read back as %+v, %v; want purpose transfer, sponsor a0", got, err)
	}
	_, err = s.GetChallenge(ctx, "missing")
	wantErr(t, err, registry.KindNotFound, "CHALLENGE_NOT_FOUND")
	err = s.Tx(ctx, func(tx registry.Tx) error { return tx.CreateChallenge(ctx, c) })
	wantErr(t, err, registry.KindAlreadyExists, "OBJECT_EXISTS")

	// A failed check: one more attempt and a problem.
	failed := c
	failed.Attempts = 1
	failed.Problem = &registry.Problem{
		Reason: "RECORD_MISMATCH",
		Detail: "ns1.example. answered \"nope\"",
		Queries: []dnsverify.Query{{
			Nameserver: "ns1.example.", Address: "192.0.2.1:53",
			Name: "_acme-challenge.alice.example.", Type: "TXT", Transport: "udp",
			Rcode: "NOERROR", Answers: []string{`_acme-challenge.alice.example. 300 IN TXT "nope"`},
			Duration: 1500 * time.Microsecond,
		}},
	}
	inTx(t, s, func(tx registry.Tx) error { return tx.UpdateChallenge(ctx, failed, registry.ChallengePending, 0) })
	got, err = s.GetChallenge(ctx, "ch1")
	if err != nil {
		t.Fatal(err)
	}
	wantChallenge(t, got, failed)

	// The same change made from what is now an old state loses.
	err = s.Tx(ctx, func(tx registry.Tx) error { return tx.UpdateChallenge(ctx, failed, registry.ChallengePending, 0) })
	wantErr(t, err, registry.KindAborted, "CONCURRENT_UPDATE")
	valid := failed
	valid.Status, valid.Attempts, valid.Problem, valid.ValidateTime = registry.ChallengeValid, 2, nil, t0.Add(time.Minute)
	err = s.Tx(ctx, func(tx registry.Tx) error { return tx.UpdateChallenge(ctx, valid, registry.ChallengeValid, 1) })
	wantErr(t, err, registry.KindAborted, "CONCURRENT_UPDATE")

	// A successful check clears the problem.
	inTx(t, s, func(tx registry.Tx) error { return tx.UpdateChallenge(ctx, valid, registry.ChallengePending, 1) })
	got, err = s.GetChallenge(ctx, "ch1")
	if err != nil {
		t.Fatal(err)
	}
	wantChallenge(t, got, valid)

	missing := newChallenge("missing", "a1")
	err = s.Tx(ctx, func(tx registry.Tx) error { return tx.UpdateChallenge(ctx, missing, registry.ChallengePending, 0) })
	wantErr(t, err, registry.KindNotFound, "CHALLENGE_NOT_FOUND")
}

// testConcurrentChallengeUse: of many transactions consuming one valid challenge, one wins.
func testConcurrentChallengeUse(t *testing.T, s registry.Store) {
	ctx := t.Context()
	setup(t, s, []string{"a1"})
	c := newChallenge("ch1", "a1")
	c.Status = registry.ChallengeValid
	inTx(t, s, func(tx registry.Tx) error { return tx.CreateChallenge(ctx, c) })
	used := c
	used.Status = registry.ChallengeConsumed

	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.Tx(ctx, func(tx registry.Tx) error {
				return tx.UpdateChallenge(ctx, used, registry.ChallengeValid, 0)
			})
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
			continue
		}
		wantErr(t, err, registry.KindAborted, "CONCURRENT_UPDATE")
	}
	if won != 1 {
		t.Fatalf("%d of %d concurrent uses of one challenge succeeded, want 1", won, n)
	}
}

func testIdentities(t *testing.T, s registry.Store) {
	ctx := t.Context()
	i1 := newIdentity("id1")
	inTx(t, s, func(tx registry.Tx) error { return tx.CreateIdentity(ctx, i1) })
	got, err := s.GetIdentity(ctx, "id1")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "GetIdentity", got, normIdentity(i1))
	_, err = s.GetIdentity(ctx, "missing")
	wantErr(t, err, registry.KindNotFound, "IDENTITY_NOT_FOUND")

	err = s.Tx(ctx, func(tx registry.Tx) error { return tx.CreateIdentity(ctx, i1) })
	wantErr(t, err, registry.KindAlreadyExists, "OBJECT_EXISTS")
	// A subject seed is never shared.
	same := newIdentity("id2")
	same.SubjectSeed = i1.SubjectSeed
	err = s.Tx(ctx, func(tx registry.Tx) error { return tx.CreateIdentity(ctx, same) })
	wantErr(t, err, registry.KindAlreadyExists, "OBJECT_EXISTS")

	retired := t0.Add(24*time.Hour + 999)
	inTx(t, s, func(tx registry.Tx) error { return tx.RetireIdentity(ctx, "id1", retired) })
	got, err = s.GetIdentity(ctx, "id1")
	if err != nil {
		t.Fatal(err)
	}
	i1.RetireTime = retired
	wantEqual(t, "GetIdentity after retirement", got, normIdentity(i1))
	if err := s.Tx(ctx, func(tx registry.Tx) error { return tx.RetireIdentity(ctx, "id1", retired.Add(time.Hour)) }); err == nil {
		t.Fatal("retiring a retired identity succeeded")
	}
	if got, err := s.GetIdentity(ctx, "id1"); err != nil || !got.RetireTime.Equal(norm(retired)) {
		t.Fatalf("after a second retirement: retire time = %v, %v; want %v", got.RetireTime, err, norm(retired))
	}
	err = s.Tx(ctx, func(tx registry.Tx) error { return tx.RetireIdentity(ctx, "missing", retired) })
	wantErr(t, err, registry.KindNotFound, "IDENTITY_NOT_FOUND")
}

func testIdentifiers(t *testing.T, s registry.Store) {
	ctx := t.Context()
	setup(t, s, []string{"a1", "a2"}, "id1", "id2", "id3")
	alice := newIdentifier("alice.example", "a1", "id1")
	alice.UnicodeName = "alice.example"
	alice.ClaimsEndpoint = "https://a1.example/alice"
	alice.Statuses = []registry.Status{registry.StatusClientDeleteProhibited, registry.StatusClientTransferProhibited}
	inTx(t, s, func(tx registry.Tx) error { return tx.CreateIdentifier(ctx, alice) })
	got, err := s.GetIdentifier(ctx, "alice.example")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "GetIdentifier", got, normIdentifier(alice))
	_, err = s.GetIdentifier(ctx, "missing.example")
	wantErr(t, err, registry.KindNotFound, "IDENTIFIER_NOT_FOUND")

	err = s.Tx(ctx, func(tx registry.Tx) error {
		return tx.CreateIdentifier(ctx, newIdentifier("alice.example", "a2", "id2"))
	})
	wantErr(t, err, registry.KindAlreadyExists, "IDENTIFIER_TAKEN")
	// An identity has one identifier.
	err = s.Tx(ctx, func(tx registry.Tx) error {
		return tx.CreateIdentifier(ctx, newIdentifier("bob.example", "a1", "id1"))
	})
	wantErr(t, err, registry.KindAlreadyExists, "OBJECT_EXISTS")

	// A transfer: new sponsor, endpoint and statuses, same identity.
	moved := alice
	moved.AgentID, moved.ClaimsEndpoint, moved.Statuses = "a2", "", nil
	moved.UpdateTime, moved.Version = t0.Add(time.Hour), 2
	inTx(t, s, func(tx registry.Tx) error { return tx.UpdateIdentifier(ctx, moved) })
	got, err = s.GetIdentifier(ctx, "alice.example")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "GetIdentifier after update", got, normIdentifier(moved))

	stale := alice
	stale.Version = 2
	err = s.Tx(ctx, func(tx registry.Tx) error { return tx.UpdateIdentifier(ctx, stale) })
	wantErr(t, err, registry.KindAborted, "CONCURRENT_UPDATE")
	missing := newIdentifier("missing.example", "a1", "id3")
	missing.Version = 2
	err = s.Tx(ctx, func(tx registry.Tx) error { return tx.UpdateIdentifier(ctx, missing) })
	wantErr(t, err, registry.KindNotFound, "IDENTIFIER_NOT_FOUND")

	err = s.Tx(ctx, func(tx registry.Tx) error { return tx.DeleteIdentifier(ctx, "alice.example", 1) })
	wantErr(t, err, registry.KindAborted, "CONCURRENT_UPDATE")
	inTx(t, s, func(tx registry.Tx) error { return tx.DeleteIdentifier(ctx, "alice.example", 2) })
	_, err = s.GetIdentifier(ctx, "alice.example")
	wantErr(t, err, registry.KindNotFound, "IDENTIFIER_NOT_FOUND")
	err = s.Tx(ctx, func(tx registry.Tx) error { return tx.DeleteIdentifier(ctx, "alice.example", 2) })
	wantErr(t, err, registry.KindNotFound, "IDENTIFIER_NOT_FOUND")

	// A deleted name can be registered again, with a new identity.
	again := newIdentifier("alice.example", "a1", "id3")
	inTx(t, s, func(tx registry.Tx) error { return tx.CreateIdentifier(ctx, again) })
	got, err = s.GetIdentifier(ctx, "alice.example")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "GetIdentifier of the name registered again", got, normIdentifier(again))
}

func testListIdentifiers(t *testing.T, s registry.Store) {
	ctx := t.Context()
	setup(t, s, []string{"a1", "a2", "a3"})
	names := []string{"k.example", "b.example", "x.example", "a.example", "m.example", "c.example", "z.example", "d.example", "q.example", "e.example"}
	var want1, want2 []registry.Identifier
	inTx(t, s, func(tx registry.Tx) error {
		for i, name := range names {
			agent := "a1"
			if i%3 == 2 {
				agent = "a2"
			}
			idn := "id-" + name
			if err := tx.CreateIdentity(ctx, newIdentity(idn)); err != nil {
				return err
			}
			ident := newIdentifier(name, agent, idn)
			if err := tx.CreateIdentifier(ctx, ident); err != nil {
				return err
			}
			if agent == "a1" {
				want1 = append(want1, normIdentifier(ident))
			} else {
				want2 = append(want2, normIdentifier(ident))
			}
		}
		return nil
	})
	byName := func(a, b registry.Identifier) int { return strings.Compare(a.Name, b.Name) }
	slices.SortFunc(want1, byName)
	slices.SortFunc(want2, byName)

	list := func(agent string, size int) []registry.Identifier {
		var got []registry.Identifier
		after := ""
		for pages := 0; ; pages++ {
			if pages > len(names) {
				t.Fatal("ListIdentifiers does not end")
			}
			page, err := s.ListIdentifiers(ctx, agent, after, size)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > size {
				t.Fatalf("ListIdentifiers returned %d identifiers, limit %d", len(page), size)
			}
			if len(page) == 0 {
				return got
			}
			got = append(got, page...)
			after = page[len(page)-1].Name
		}
	}
	wantEqual(t, "identifiers of a1, page by page", list("a1", 3), want1)
	wantEqual(t, "identifiers of a2, page by page", list("a2", 2), want2)
	if got := list("a3", 5); len(got) != 0 {
		t.Fatalf("identifiers of a3 = %v, want none", got)
	}
	page, err := s.ListIdentifiers(ctx, "a1", "c.example", 2)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "ListIdentifiers(a1) after c.example", page, []registry.Identifier{want1[2], want1[3]})
}

func testJournal(t *testing.T, s registry.Store) {
	ctx := t.Context()
	entries := []registry.JournalEntry{
		{Actor: "agent:a1", Action: "register", ObjectType: "identifier", ObjectID: "alice.example", After: `{"name":"alice.example"}`},
		{Actor: "agent:a1", Action: "register", ObjectType: "identifier", ObjectID: "bob.example", After: `{"name":"bob.example"}`},
		{Actor: "operator:op", Action: "update", ObjectType: "agent", ObjectID: "a1", Before: `{"v":1}`, After: `{"v":2}`},
		{Actor: "agent:a1", Action: "update", ObjectType: "identifier", ObjectID: "alice.example", Before: `{"v":1}`, After: `{"v":2}`},
		{Actor: "agent:a1", Action: "delete", ObjectType: "identifier", ObjectID: "alice.example", Before: `{"v":2}`},
		{Actor: "operator:op", Action: "update", ObjectType: "other", ObjectID: "alice.example"},
	}
	for i := range entries {
		entries[i].Time = t0.Add(time.Duration(i) * time.Second)
		e := entries[i]
		inTx(t, s, func(tx registry.Tx) error {
			id, err := tx.AppendJournal(ctx, e)
			if err != nil {
				return err
			}
			if i > 0 && id <= entries[i-1].ID {
				t.Errorf("journal ID %d after %d, want increasing", id, entries[i-1].ID)
			}
			entries[i].ID = id
			return nil
		})
		entries[i].Time = norm(entries[i].Time)
	}
	pick := func(idx ...int) []registry.JournalEntry {
		var out []registry.JournalEntry
		for _, i := range idx {
			out = append(out, entries[i])
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		f     registry.JournalFilter
		after int64
		limit int
		want  []registry.JournalEntry
	}{
		{"all", registry.JournalFilter{}, 0, 100, entries},
		{"limit", registry.JournalFilter{}, 0, 2, pick(0, 1)},
		{"after", registry.JournalFilter{}, entries[2].ID, 2, pick(3, 4)},
		{"type", registry.JournalFilter{ObjectType: "identifier"}, 0, 100, pick(0, 1, 3, 4)},
		{"object", registry.JournalFilter{ObjectType: "identifier", ObjectID: "alice.example"}, 0, 100, pick(0, 3, 4)},
		{"object after", registry.JournalFilter{ObjectType: "identifier", ObjectID: "alice.example"}, entries[0].ID, 1, pick(3)},
		{"id only", registry.JournalFilter{ObjectID: "alice.example"}, 0, 100, pick(0, 3, 4, 5)},
		{"none", registry.JournalFilter{ObjectType: "identity"}, 0, 100, nil},
	} {
		got, err := s.ListJournal(ctx, tc.f, tc.after, tc.limit)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(got) == 0 {
			got = nil
		}
		wantEqual(t, "ListJournal "+tc.name, got, tc.want)
	}
	// LatestJournal: the last ones, newest first.
	got, err := s.LatestJournal(ctx, registry.JournalFilter{ObjectType: "identifier", ObjectID: "alice.example"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "LatestJournal", got, pick(4, 3))
}

// testTimePrecision: a time comes back as written, truncated to the microsecond, in UTC, and
// times a microsecond apart keep their order.
func testTimePrecision(t *testing.T, s registry.Store) {
	ctx := t.Context()
	times := []time.Time{
		t0,
		time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(2100, 1, 1, 0, 0, 0, 1000, time.FixedZone("", -7*3600)),
	}
	inTx(t, s, func(tx registry.Tx) error {
		for i, tm := range times {
			ident := newIdentity(fmt.Sprint("id", i))
			ident.CreateTime = tm
			if err := tx.CreateIdentity(ctx, ident); err != nil {
				return err
			}
		}
		return nil
	})
	for i, tm := range times {
		got, err := s.GetIdentity(ctx, fmt.Sprint("id", i))
		if err != nil {
			t.Fatal(err)
		}
		want := tm.Truncate(time.Microsecond)
		if !got.CreateTime.Equal(want) || got.CreateTime.Location() != time.UTC {
			t.Errorf("time %v came back as %v, want %v in UTC", tm, got.CreateTime, want.UTC())
		}
		if !got.RetireTime.IsZero() {
			t.Errorf("zero time came back as %v", got.RetireTime)
		}
	}
}

// testTxRollback: a transaction whose function fails leaves nothing behind.
func testTxRollback(t *testing.T, s registry.Store) {
	ctx := t.Context()
	errBoom := errors.New("boom")
	err := s.Tx(ctx, func(tx registry.Tx) error {
		steps := []func() error{
			func() error { return tx.CreateAgent(ctx, newAgent("a1", "cc01")) },
			func() error { return tx.CreateIdentity(ctx, newIdentity("id1")) },
			func() error { return tx.CreateIdentifier(ctx, newIdentifier("alice.example", "a1", "id1")) },
			func() error {
				return tx.CreateCredential(ctx, registry.Credential{ID: "tok", AgentID: "a1", SecretHash: []byte{1}, CreateTime: t0})
			},
			func() error { return tx.CreateChallenge(ctx, newChallenge("ch1", "a1")) },
			func() error {
				_, err := tx.AppendJournal(ctx, registry.JournalEntry{Time: t0, Actor: "x", Action: "register", ObjectType: "identifier", ObjectID: "alice.example"})
				return err
			},
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return err
			}
		}
		if _, err := tx.GetIdentifier(ctx, "alice.example"); err != nil {
			return fmt.Errorf("reading own write: %w", err)
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Tx = %v, want the function's error", err)
	}

	_, err = s.GetAgent(ctx, "a1")
	wantErr(t, err, registry.KindNotFound, "AGENT_NOT_FOUND")
	_, err = s.FindAgentByCertSPKI(ctx, "cc01")
	wantErr(t, err, registry.KindNotFound, "AGENT_NOT_FOUND")
	_, err = s.GetIdentity(ctx, "id1")
	wantErr(t, err, registry.KindNotFound, "IDENTITY_NOT_FOUND")
	_, err = s.GetIdentifier(ctx, "alice.example")
	wantErr(t, err, registry.KindNotFound, "IDENTIFIER_NOT_FOUND")
	_, err = s.GetCredential(ctx, "tok")
	wantErr(t, err, registry.KindNotFound, "CREDENTIAL_NOT_FOUND")
	_, err = s.GetChallenge(ctx, "ch1")
	wantErr(t, err, registry.KindNotFound, "CHALLENGE_NOT_FOUND")
	if j, err := s.LatestJournal(ctx, registry.JournalFilter{}, 10); err != nil || len(j) != 0 {
		t.Fatalf("LatestJournal of an empty store: %v, %v", j, err)
	}
	if j, err := s.ListJournal(ctx, registry.JournalFilter{}, 0, 10); err != nil || len(j) != 0 {
		t.Fatalf("journal after rollback = %v, %v; want empty", j, err)
	}

	// The same writes, committed, are all there.
	setup(t, s, []string{"a1"}, "id1")
	inTx(t, s, func(tx registry.Tx) error {
		return tx.CreateIdentifier(ctx, newIdentifier("alice.example", "a1", "id1"))
	})
	if _, err := s.GetIdentifier(ctx, "alice.example"); err != nil {
		t.Fatal(err)
	}
}

// testConcurrentRegistration: of many transactions registering one name, each with a new
// identity, exactly one succeeds and the losers leave nothing behind.
func testConcurrentRegistration(t *testing.T, s registry.Store) {
	ctx := t.Context()
	setup(t, s, []string{"a1"})
	const n = 32
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			identity := fmt.Sprint("id", i)
			errs[i] = s.Tx(ctx, func(tx registry.Tx) error {
				if err := tx.CreateIdentity(ctx, newIdentity(identity)); err != nil {
					return err
				}
				return tx.CreateIdentifier(ctx, newIdentifier("race.example", "a1", identity))
			})
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, err := range errs {
		if err == nil {
			if winner >= 0 {
				t.Fatalf("registrations %d and %d both succeeded", winner, i)
			}
			winner = i
			continue
		}
		wantErr(t, err, registry.KindAlreadyExists, "IDENTIFIER_TAKEN")
	}
	if winner < 0 {
		t.Fatal("no registration succeeded")
	}
	got, err := s.GetIdentifier(ctx, "race.example")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprint("id", winner); got.IdentityID != want {
		t.Fatalf("identifier has identity %s, want the winner's %s", got.IdentityID, want)
	}
	if l, err := s.ListIdentifiers(ctx, "a1", "", 100); err != nil || len(l) != 1 {
		t.Fatalf("identifiers of a1 = %d, %v; want 1", len(l), err)
	}
	identities := 0
	for i := range n {
		_, err := s.GetIdentity(ctx, fmt.Sprint("id", i))
		switch {
		case err == nil:
			identities++
		case registry.KindOf(err) != registry.KindNotFound:
			t.Fatal(err)
		}
	}
	if identities != 1 {
		t.Fatalf("%d identities stored, want 1: the losers' must roll back", identities)
	}
}
