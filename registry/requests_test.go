package registry_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/internal/testdb"
	"github.com/id4me/id4me-registry/registry"
)

// A call made with a request_id can be retried after a lost answer: the retry gets the first
// call's outcome instead of being made again, or failing because the first call used the
// challenge.

const requestID = "5f0c6e9e-2f7a-4d1e-9a55-1c1b1e0e7a42"

// TestRetriedRegistration: a registration retried with its request_id answers with the
// identifier the first call registered, as it is now, and makes nothing; the same id for
// another call is refused; each agent's ids are its own.
func TestRetriedRegistration(t *testing.T) {
	w := newWorld(t)
	alpha, beta := w.newAgent("alpha"), w.newAgent("beta")
	c := w.validChallenge(alpha, alice, registry.PurposeRegister)
	const endpoint = "https://alpha.agent.test/alice"
	first, err := w.svc.RegisterIdentifier(w.ctx, alpha, c.ID, endpoint, requestID)
	if err != nil {
		t.Fatal(err)
	}
	w.clock.Advance(time.Minute)
	retry, err := w.svc.RegisterIdentifier(w.ctx, alpha, c.ID, endpoint, requestID)
	if err != nil {
		t.Fatalf("retry with the same request_id: %v", err)
	}
	if retry.Name != first.Name || retry.IdentityID != first.IdentityID || retry.Etag() != first.Etag() || retry.EffectiveClaimsEndpoint != endpoint {
		t.Fatalf("retry answered %+v, want the first answer %+v", retry, first)
	}
	if j := w.journal("identifier", alice); len(j) != 1 {
		t.Fatalf("journal %v, want one registration", actions(j))
	}
	// A retry answers with the identifier as it is now.
	w.update(alpha, alice, "", registry.StatusClientDeleteProhibited)
	if again, err := w.svc.RegisterIdentifier(w.ctx, alpha, c.ID, endpoint, requestID); err != nil || again.Version != 2 || again.ClaimsEndpoint != "" {
		t.Fatalf("retry after an update = %+v, %v; want the identifier as updated", again, err)
	}

	// Without the request_id the same call is what it always was.
	_, err = w.svc.RegisterIdentifier(w.ctx, alpha, c.ID, endpoint, "")
	wantErr(t, err, registry.KindFailedPrecondition, "CHALLENGE_CONSUMED")

	// Another agent's request_id is its own.
	bob := w.validChallenge(beta, "bob.example.test", registry.PurposeRegister)
	if i, err := w.svc.RegisterIdentifier(w.ctx, beta, bob.ID, "", requestID); err != nil || i.Name != "bob.example.test" || i.AgentID != beta.ID {
		t.Fatalf("beta's registration with alpha's request_id: %+v, %v", i, err)
	}

	// The same request_id for another challenge, or with other arguments, is refused, and
	// makes nothing.
	carol := w.validChallenge(alpha, "carol.example.test", registry.PurposeRegister)
	_, err = w.svc.RegisterIdentifier(w.ctx, alpha, carol.ID, "", requestID)
	wantErr(t, err, registry.KindInvalidArgument, "REQUEST_ID_REUSED")
	_, err = w.svc.RegisterIdentifier(w.ctx, alpha, c.ID, "https://alpha.agent.test/other", requestID)
	wantErr(t, err, registry.KindInvalidArgument, "REQUEST_ID_REUSED")
	if _, ok := w.identifier("carol.example.test"); ok {
		t.Fatal("carol.example.test was registered under a reused request_id")
	}
	if got, _ := w.svc.GetChallenge(w.ctx, alpha, carol.ID); got.Status != registry.ChallengeValid {
		t.Fatalf("carol's challenge is %s after the refusal, want valid", got.Status)
	}
	// The same id for a call of another method is refused too.
	tc := w.validChallenge(alpha, "bob.example.test", registry.PurposeTransfer)
	_, err = w.svc.RequestTransfer(w.ctx, alpha, tc.ID, requestID)
	wantErr(t, err, registry.KindInvalidArgument, "REQUEST_ID_REUSED")
	// carol's challenge is still good for a request of its own.
	if _, err := w.svc.RegisterIdentifier(w.ctx, alpha, carol.ID, "", "carol-1"); err != nil {
		t.Fatalf("carol with a new request_id: %v", err)
	}
}

// TestRequestIDForm: a request_id is 1 to 64 letters, digits, '-', '_' or '.'.
func TestRequestIDForm(t *testing.T) {
	w := newWorld(t)
	a := w.newAgent("alpha")
	for k, tc := range []struct {
		id string
		ok bool
	}{
		{requestID, true},
		{strings.Repeat("a", 64), true},
		{"A.b_c-9", true},
		{"has space", false},
		{strings.Repeat("a", 65), false},
		{"ünïcode", false},
		{"semi;colon", false},
		{"slash/", false},
		{"new\nline", false},
	} {
		t.Run(tc.id, func(t *testing.T) {
			c := w.validChallenge(a, fmt.Sprintf("form%d.example.test", k), registry.PurposeRegister)
			_, err := w.svc.RegisterIdentifier(w.ctx, a, c.ID, "", tc.id)
			if tc.ok {
				if err != nil {
					t.Fatalf("request_id %q: %v", tc.id, err)
				}
				return
			}
			wantErr(t, err, registry.KindInvalidArgument, "REQUEST_ID_INVALID")
			_, err = w.svc.RequestTransfer(w.ctx, a, c.ID, tc.id)
			wantErr(t, err, registry.KindInvalidArgument, "REQUEST_ID_INVALID")
			if got, _ := w.svc.GetChallenge(w.ctx, a, c.ID); got.Status != registry.ChallengeValid {
				t.Fatalf("the challenge is %s after the refusal, want valid", got.Status)
			}
		})
	}
}

// TestRetriedFailureIsNotRecorded: a call that failed recorded nothing, so a retry with its
// request_id is a new call.
func TestRetriedFailureIsNotRecorded(t *testing.T) {
	w := newWorld(t)
	a := w.newAgent("alpha")
	c := w.challenge(a, alice, registry.PurposeRegister)
	_, err := w.svc.RegisterIdentifier(w.ctx, a, c.ID, "", requestID)
	wantErr(t, err, registry.KindFailedPrecondition, "CHALLENGE_NOT_VALID")
	w.dns.publish(c)
	if _, err := w.svc.VerifyChallenge(w.ctx, a, c.ID); err != nil {
		t.Fatal(err)
	}
	if i, err := w.svc.RegisterIdentifier(w.ctx, a, c.ID, "", requestID); err != nil || i.Name != alice {
		t.Fatalf("the retry after the failure = %+v, %v; want the registration", i, err)
	}
}

// TestRetriedTransfer: RequestTransfer retried with its request_id answers with the transfer
// the first call made, as it is now, and tells nobody again.
func TestRetriedTransfer(t *testing.T) {
	w := newTransferWorld(t, pending)
	c := w.validChallenge(w.gainer, alice, registry.PurposeTransfer)
	first, err := w.svc.RequestTransfer(w.ctx, w.gainer, c.ID, requestID)
	if err != nil {
		t.Fatal(err)
	}
	retry, err := w.svc.RequestTransfer(w.ctx, w.gainer, c.ID, requestID)
	if err != nil || retry != first {
		t.Fatalf("retry = %+v, %v; want the first transfer %+v", retry, err, first)
	}
	if list, _, _ := w.svc.ListTransfers(w.ctx, w.loser, registry.TransferBoth, false, 0, ""); len(list) != 1 {
		t.Fatalf("%d transfers, want 1", len(list))
	}
	w.transfer = first
	if err := w.approve(w.loser); err != nil {
		t.Fatal(err)
	}
	before := len(w.allEvents(w.loser)) + len(w.allEvents(w.gainer))
	retry, err = w.svc.RequestTransfer(w.ctx, w.gainer, c.ID, requestID)
	if err != nil || retry.ID != first.ID || retry.Status != registry.TransferClientApproved {
		t.Fatalf("retry after the approval = %+v, %v; want transfer %s approved", retry, err, first.ID)
	}
	if after := len(w.allEvents(w.loser)) + len(w.allEvents(w.gainer)); after != before {
		t.Fatalf("a retry wrote %d events", after-before)
	}
	// The same id with another challenge is refused.
	w.register(w.loser, "bob.example.test")
	bc := w.validChallenge(w.gainer, "bob.example.test", registry.PurposeTransfer)
	_, err = w.svc.RequestTransfer(w.ctx, w.gainer, bc.ID, requestID)
	wantErr(t, err, registry.KindInvalidArgument, "REQUEST_ID_REUSED")
	if list, _, _ := w.svc.ListTransfers(w.ctx, w.loser, registry.TransferBoth, false, 0, ""); len(list) != 1 {
		t.Fatalf("%d transfers after a reused request_id, want 1", len(list))
	}
}

// TestRetriedRegistrationAfterTheIdentifierLeft: a registration retried once its identifier
// has left the agent, by a transfer or a purge, says so rather than pretend; so does one
// retried after the name was purged and registered again, with another identity.
func TestRetriedRegistrationAfterTheIdentifierLeft(t *testing.T) {
	keep := func(c *registry.Config) { c.RequestIDRetention = 2 * redemptionPeriod }
	t.Run("transferred", func(t *testing.T) {
		w := newTransferWorld(t, keep)
		c := w.validChallenge(w.loser, "bob.example.test", registry.PurposeRegister)
		if _, err := w.svc.RegisterIdentifier(w.ctx, w.loser, c.ID, "", requestID); err != nil {
			t.Fatal(err)
		}
		w.requestTransfer(w.gainer, "bob.example.test")
		_, err := w.svc.RegisterIdentifier(w.ctx, w.loser, c.ID, "", requestID)
		wantErr(t, err, registry.KindFailedPrecondition, "REQUEST_OUTCOME_GONE")
	})
	t.Run("purged and registered again", func(t *testing.T) {
		w := newWorld(t, keep)
		a := w.newAgent("alpha")
		c := w.validChallenge(a, alice, registry.PurposeRegister)
		if _, err := w.svc.RegisterIdentifier(w.ctx, a, c.ID, "", requestID); err != nil {
			t.Fatal(err)
		}
		w.clock.Set(w.remove(a, alice).PurgeTime)
		w.sweep(w.svc.SweepPurges)
		_, err := w.svc.RegisterIdentifier(w.ctx, a, c.ID, "", requestID)
		wantErr(t, err, registry.KindFailedPrecondition, "REQUEST_OUTCOME_GONE")
		w.register(a, alice)
		_, err = w.svc.RegisterIdentifier(w.ctx, a, c.ID, "", requestID)
		wantErr(t, err, registry.KindFailedPrecondition, "REQUEST_OUTCOME_GONE")
	})
}

// TestConcurrentRetriesRegisterOnce: calls with one request_id racing each other register the
// identifier once, and every one of them gets it.
func TestConcurrentRetriesRegisterOnce(t *testing.T) {
	for _, backend := range testdb.Backends() {
		t.Run(backend.Name, func(t *testing.T) {
			w := newWorldOn(t, backend.DSN(t))
			a := w.newAgent("alpha")
			identities := map[string]bool{}
			for round := range raceRounds {
				c := w.validChallenge(a, raceName(round), registry.PurposeRegister)
				infos := make([]registry.IdentifierInfo, 4)
				errs := race(len(infos), func(k int) (err error) {
					infos[k], err = w.svc.RegisterIdentifier(w.ctx, a, c.ID, "", c.ID)
					return err
				})
				for k, err := range errs {
					if err != nil || infos[k].Name != raceName(round) || infos[k].IdentityID != infos[0].IdentityID {
						t.Fatalf("round %d, call %d: %+v, %v; want %s with one identity", round, k, infos[k], err, raceName(round))
					}
				}
				identities[infos[0].IdentityID] = true
				if j := w.journal("identifier", raceName(round)); len(j) != 1 {
					t.Fatalf("round %d: journal %v, want one registration", round, actions(j))
				}
			}
			if len(identities) != raceRounds {
				t.Fatalf("%d identities, want %d", len(identities), raceRounds)
			}
		})
	}
}

// TestRequestOutcomesExpire: the outcome of a call with a request_id is kept for the
// retention, then the sweep deletes it; a retry after that is a new call.
func TestRequestOutcomesExpire(t *testing.T) {
	const retention = 48 * time.Hour
	w := newWorld(t, func(c *registry.Config) { c.RequestIDRetention = retention })
	a := w.newAgent("alpha")
	c := w.validChallenge(a, alice, registry.PurposeRegister)
	if _, err := w.svc.RegisterIdentifier(w.ctx, a, c.ID, "", requestID); err != nil {
		t.Fatal(err)
	}
	w.clock.Advance(retention)
	if n := w.sweep(w.svc.SweepRequests); n != 0 {
		t.Fatalf("the sweep deleted %d outcomes at the retention", n)
	}
	if _, err := w.svc.RegisterIdentifier(w.ctx, a, c.ID, "", requestID); err != nil {
		t.Fatalf("retry within the retention: %v", err)
	}
	w.clock.Advance(time.Microsecond)
	if n := w.sweep(w.svc.SweepRequests); n != 1 {
		t.Fatalf("the sweep deleted %d outcomes after the retention, want 1", n)
	}
	_, err := w.svc.RegisterIdentifier(w.ctx, a, c.ID, "", requestID)
	wantErr(t, err, registry.KindFailedPrecondition, "CHALLENGE_CONSUMED")
	// Once forgotten, the id is free for another call.
	other := w.validChallenge(a, "bob.example.test", registry.PurposeRegister)
	if _, err := w.svc.RegisterIdentifier(w.ctx, a, other.ID, "", requestID); err != nil {
		t.Fatalf("the forgotten request_id for another call: %v", err)
	}
}
