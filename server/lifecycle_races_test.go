package server_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/id4me/id4me-registry/internal/testdb"
	"github.com/id4me/id4me-registry/internal/testenv"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
	"github.com/id4me/id4me-registry/registry"
	"github.com/id4me/id4me-registry/sqlstore"
)

// Races: calls that contend for one identifier or one transfer, released together, several
// rounds each, on SQLite and (when ID4ME_TEST_POSTGRES_DSN is set) PostgreSQL. Every round
// must end in exactly one of the outcomes the API allows, and the store must agree with it:
// the identifier's sponsor and statuses, the transfer's status, and each agent's events.
//
// A call that loses a race is refused either for the state the winner left (the same refusal
// it would get if it came later) or, when the two transactions overlapped, with ABORTED
// CONCURRENT_UPDATE, which asks the client to read again and retry.

// raceRounds is how many times each race is run.
const raceRounds = 10

// concurrentUpdate is how a call that overlapped the winner's transaction is refused.
var concurrentUpdate = outcome{codes.Aborted, "CONCURRENT_UPDATE"}

// forEachBackend runs test on SQLite and on PostgreSQL (skipped without its DSN).
func forEachBackend(t *testing.T, test func(t *testing.T, dsn func(testing.TB) string)) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) { test(t, b.DSN) })
	}
}

// raceOptions is lifecycleOptions on the database dsn gives.
func raceOptions(dsn func(testing.TB) string, pending time.Duration) envOptions {
	opts := lifecycleOptions(pending)
	opts.dsn = dsn
	return opts
}

// raceName is the identifier contended for in a round.
func raceName(round int) string { return fmt.Sprintf("race%d.example.test", round) }

// wantSponsor checks that identifier name is sponsored by a, with statuses.
func (e *env) wantSponsor(t *testing.T, name string, a testAgent, statuses ...registryv1.IdentifierStatus) {
	t.Helper()
	i := e.identifier(name)
	if i == nil {
		t.Fatalf("%s is gone, want it sponsored by %s", name, a.agent.DisplayName)
	}
	if i.AgentId != a.agent.Id {
		t.Fatalf("%s is sponsored by %s, want %s (%s)", name, i.AgentId, a.agent.DisplayName, a.agent.Id)
	}
	wantStatuses(t, name, i.Statuses, statuses...)
}

// wantToldAbout checks agent a's events about identifier name.
func (e *env) wantToldAbout(t *testing.T, a testAgent, name string, want ...registryv1.Event_Type) {
	t.Helper()
	wantEvents(t, a.agent.DisplayName+" ("+name+")", e.eventsAbout(a, name), want...)
}

// transfersOf returns agent a's transfers of identifier name, oldest first.
func (e *env) transfersOf(a testAgent, name string) []*registryv1.Transfer {
	e.t.Helper()
	resp, err := e.registry.ListTransfers(a.ctx(), &registryv1.ListTransfersRequest{PageSize: 1000})
	if err != nil {
		e.t.Fatalf("ListTransfers: %v", err)
	}
	return slices.DeleteFunc(resp.Transfers, func(tr *registryv1.Transfer) bool { return tr.Identifier != name })
}

// wantTransfers checks the statuses of agent a's transfers of identifier name, oldest first.
func (e *env) wantTransfers(t *testing.T, a testAgent, name string, want ...registryv1.Transfer_Status) {
	t.Helper()
	var got []registryv1.Transfer_Status
	for _, tr := range e.transfersOf(a, name) {
		got = append(got, tr.Status)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s's transfers of %s are %v, want %v", a.agent.DisplayName, name, got, want)
	}
}

// wantChallenge checks the status of one of agent a's challenges.
func (e *env) wantChallenge(t *testing.T, a testAgent, id string, want registryv1.Challenge_Status) {
	t.Helper()
	c, err := e.registry.GetChallenge(a.ctx(), &registryv1.GetChallengeRequest{Id: id})
	if err != nil {
		t.Fatalf("GetChallenge: %v", err)
	}
	if c.Status != want {
		t.Fatalf("challenge %s is %v, want %v", id, c.Status, want)
	}
}

// wantNumbered checks that each agent's events, acknowledged or not, are numbered 1, 2, 3, ...
// without gaps.
func (e *env) wantNumbered(t *testing.T, agents ...testAgent) {
	t.Helper()
	for _, a := range agents {
		evs, err := e.svc.EventsAfter(context.Background(), actorOf(a), 0, registry.MaxPageSize)
		if err != nil {
			t.Fatal(err)
		}
		for k, ev := range evs {
			if ev.ID != int64(k+1) {
				t.Fatalf("%s's event %d is numbered %d: the numbering has a gap or a duplicate", a.agent.DisplayName, k+1, ev.ID)
			}
		}
	}
}

// The losing agent approves a pending transfer while the gaining agent cancels it: one of
// them wins, and the identifier moved exactly when the approval won.
func TestRaceApproveCancel(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn func(testing.TB) string) {
		e := newEnv(t, raceOptions(dsn, transferPendingPeriod))
		loser, gainer := e.newAgent("loser"), e.newAgent("gainer")
		lost := []outcome{{codes.FailedPrecondition, "TRANSFER_NOT_PENDING"}, concurrentUpdate}
		tally := map[string]int{}
		for round := range raceRounds {
			name := raceName(round)
			e.register(loser, name)
			tr := e.requestTransfer(gainer, name)
			errs := race(
				func() error {
					_, err := e.registry.ApproveTransfer(loser.ctx(), &registryv1.ApproveTransferRequest{Id: tr.Id})
					return err
				},
				func() error {
					_, err := e.registry.CancelTransfer(gainer.ctx(), &registryv1.CancelTransferRequest{Id: tr.Id})
					return err
				},
			)
			approved, cancelled := errs[0] == nil, errs[1] == nil
			switch {
			case approved && !cancelled:
				tally["approved"]++
				wantOneOf(t, "CancelTransfer", errs[1], lost...)
				e.wantSponsor(t, name, gainer, stOK)
				e.wantTransfers(t, loser, name, registryv1.Transfer_STATUS_CLIENT_APPROVED)
				e.wantToldAbout(t, loser, name, evRequested, evCompletedOut)
				e.wantToldAbout(t, gainer, name, evApproved, evCompletedIn)
			case cancelled && !approved:
				tally["cancelled"]++
				wantOneOf(t, "ApproveTransfer", errs[0], lost...)
				e.wantSponsor(t, name, loser, stOK)
				e.wantTransfers(t, loser, name, registryv1.Transfer_STATUS_CLIENT_CANCELLED)
				e.wantToldAbout(t, loser, name, evRequested, evCancelled)
				e.wantToldAbout(t, gainer, name)
			default:
				t.Fatalf("round %d: approve: %v; cancel: %v; want exactly one to succeed", round, errs[0], errs[1])
			}
		}
		e.wantNumbered(t, loser, gainer)
		t.Logf("outcomes of %d rounds: %v", raceRounds, tally)
	})
}

// The gaining agent asks for an identifier while its sponsor deletes it. Without a pending
// period one of them wins: the identifier moves, or it is pending delete and the transfer
// challenge stays unused. With one, the transfer may come first and then be cancelled by the
// delete.
func TestRaceRequestTransferDelete(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn func(testing.TB) string) {
		for _, pending := range []time.Duration{0, transferPendingPeriod} {
			t.Run("pending "+pending.String(), func(t *testing.T) {
				e := newEnv(t, raceOptions(dsn, pending))
				loser, gainer := e.newAgent("loser"), e.newAgent("gainer")
				tally := map[string]int{}
				for round := range raceRounds {
					name := raceName(round)
					e.register(loser, name)
					c := e.transferChallenge(gainer, name)
					errs := race(
						func() error {
							_, err := e.registry.RequestTransfer(gainer.ctx(), &registryv1.RequestTransferRequest{ChallengeId: c.Id})
							return err
						},
						func() error {
							_, err := e.registry.DeleteIdentifier(loser.ctx(), &registryv1.DeleteIdentifierRequest{Identifier: name})
							return err
						},
					)
					requested, deleted := errs[0] == nil, errs[1] == nil
					switch {
					case requested && deleted && pending > 0:
						tally["requested, then cancelled by the delete"]++
						e.wantSponsor(t, name, loser, stPendingDelete)
						e.wantTransfers(t, loser, name, registryv1.Transfer_STATUS_SERVER_CANCELLED)
						e.wantToldAbout(t, loser, name, evRequested, evCancelled, evDeleted)
						e.wantToldAbout(t, gainer, name, evCancelled)
					case requested && pending > 0:
						tally["requested; delete overlapped"]++
						wantOneOf(t, "DeleteIdentifier", errs[1], concurrentUpdate)
						e.wantSponsor(t, name, loser, stPendingTransfer)
						e.wantTransfers(t, loser, name, registryv1.Transfer_STATUS_PENDING)
						e.wantToldAbout(t, loser, name, evRequested)
						e.wantToldAbout(t, gainer, name)
					case requested && !deleted:
						tally["transferred"]++
						// The identifier is no longer the losing agent's to delete.
						wantOneOf(t, "DeleteIdentifier", errs[1], outcome{codes.NotFound, "IDENTIFIER_NOT_FOUND"}, concurrentUpdate)
						e.wantSponsor(t, name, gainer, stOK)
						e.wantTransfers(t, loser, name, registryv1.Transfer_STATUS_SERVER_APPROVED)
						e.wantToldAbout(t, loser, name, evCompletedOut)
						e.wantToldAbout(t, gainer, name, evCompletedIn)
					case deleted && !requested:
						tally["deleted"]++
						wantOneOf(t, "RequestTransfer", errs[0], outcome{codes.FailedPrecondition, "IDENTIFIER_PENDING_DELETE"}, concurrentUpdate)
						e.wantSponsor(t, name, loser, stPendingDelete)
						e.wantTransfers(t, loser, name)
						e.wantChallenge(t, gainer, c.Id, registryv1.Challenge_STATUS_VALID)
						e.wantToldAbout(t, loser, name, evDeleted)
						e.wantToldAbout(t, gainer, name)
					default:
						t.Fatalf("round %d: request: %v; delete: %v; not an outcome the API allows", round, errs[0], errs[1])
					}
				}
				e.wantNumbered(t, loser, gainer)
				t.Logf("outcomes of %d rounds: %v", raceRounds, tally)
			})
		}
	})
}

// Two gaining agents, each with a valid transfer challenge made while loser sponsored the
// identifier, ask for it at once. Exactly one request succeeds: with a pending period one
// transfer is pending afterwards; without one the identifier moved to the winner, and the
// other request is refused, for a challenge made under another sponsor (SPONSOR_CHANGED) or
// because the two overlapped (ABORTED).
func TestRaceTwoGainingAgents(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn func(testing.TB) string) {
		for _, pending := range []time.Duration{0, transferPendingPeriod} {
			t.Run("pending "+pending.String(), func(t *testing.T) {
				e := newEnv(t, raceOptions(dsn, pending))
				loser := e.newAgent("loser")
				gainers := []testAgent{e.newAgent("gainer1"), e.newAgent("gainer2")}
				tally := map[string]int{}
				for round := range raceRounds {
					name := raceName(round)
					e.register(loser, name)
					challenges := []*registryv1.Challenge{e.transferChallenge(gainers[0], name), e.transferChallenge(gainers[1], name)}
					transfers := make([]*registryv1.Transfer, 2)
					request := func(k int) func() error {
						return func() error {
							var err error
							transfers[k], err = e.registry.RequestTransfer(gainers[k].ctx(), &registryv1.RequestTransferRequest{ChallengeId: challenges[k].Id})
							return err
						}
					}
					errs := race(request(0), request(1))
					if errs[0] != nil && errs[1] != nil {
						t.Fatalf("round %d: both requests failed: %v; %v", round, errs[0], errs[1])
					}
					if pending > 0 {
						tally["one pending"]++
						win, lose := 0, 1
						if errs[0] != nil {
							win, lose = 1, 0
						}
						wantOneOf(t, "the second RequestTransfer", errs[lose],
							outcome{codes.FailedPrecondition, "TRANSFER_PENDING"}, concurrentUpdate)
						e.wantSponsor(t, name, loser, stPendingTransfer)
						e.wantTransfers(t, loser, name, registryv1.Transfer_STATUS_PENDING)
						if got := e.transfersOf(loser, name)[0].Id; got != transfers[win].Id {
							t.Fatalf("the pending transfer is %s, want the winner's %s", got, transfers[win].Id)
						}
						e.wantChallenge(t, gainers[lose], challenges[lose].Id, registryv1.Challenge_STATUS_VALID)
						e.wantToldAbout(t, loser, name, evRequested)
						e.wantToldAbout(t, gainers[0], name)
						e.wantToldAbout(t, gainers[1], name)
						continue
					}
					if errs[0] == nil && errs[1] == nil {
						t.Fatalf("round %d: both requests succeeded: %v; %v", round, transfers[0], transfers[1])
					}
					tally["one"]++
					win, lose := 0, 1
					if errs[0] != nil {
						win, lose = 1, 0
					}
					wantOneOf(t, "the other RequestTransfer", errs[lose], outcome{codes.FailedPrecondition, "SPONSOR_CHANGED"}, concurrentUpdate)
					e.wantSponsor(t, name, gainers[win], stOK)
					e.wantTransfers(t, loser, name, registryv1.Transfer_STATUS_SERVER_APPROVED)
					e.wantTransfers(t, gainers[lose], name)
					e.wantChallenge(t, gainers[lose], challenges[lose].Id, registryv1.Challenge_STATUS_VALID)
					e.wantToldAbout(t, loser, name, evCompletedOut)
					e.wantToldAbout(t, gainers[win], name, evCompletedIn)
					e.wantToldAbout(t, gainers[lose], name)
				}
				e.wantNumbered(t, loser, gainers[0], gainers[1])
				t.Logf("outcomes of %d rounds: %v", raceRounds, tally)
			})
		}
	})
}

// moveTo sets the clock to at.
func (c *clock) moveTo(at time.Time) { c.Advance(at.Sub(c.Now())) }

// Two registry instances share one database, their clocks either side of a deleted
// identifier's purge time: one restores it a moment before, the other's sweep purges it a
// moment after. Exactly one happens: restored, the identifier is back with its identity in
// use; purged, it is gone and its identity retired.
func TestRaceRestorePurge(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsnFor func(testing.TB) string) {
		ctx := context.Background()
		dsn := dsnFor(t)
		e := newEnv(t, raceOptions(func(testing.TB) string { return dsn }, 0))
		store, err := sqlstore.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		late := &clock{testenv.NewClock(e.clock.Now())}
		purger, err := registry.New(registry.Config{Store: store, Now: late.Now, RedemptionPeriod: redemptionPeriod})
		if err != nil {
			t.Fatal(err)
		}
		a := e.newAgent("alpha")
		tally := map[string]int{}
		for round := range raceRounds {
			name := raceName(round)
			e.register(a, name)
			identity := e.identityOf(name)
			purgeTime := e.deleteIdentifier(a, name).PurgeTime.AsTime()
			e.clock.moveTo(purgeTime.Add(-time.Millisecond))
			late.moveTo(purgeTime.Add(time.Millisecond))
			var purged int
			errs := race(
				func() error {
					_, err := e.registry.RestoreIdentifier(a.ctx(), &registryv1.RestoreIdentifierRequest{Identifier: name})
					return err
				},
				func() (err error) {
					purged, err = purger.SweepPurges(ctx)
					return err
				},
			)
			if errs[1] != nil {
				t.Fatalf("round %d: SweepPurges: %v", round, errs[1])
			}
			restored := errs[0] == nil
			switch {
			case restored && purged == 0:
				tally["restored"]++
				e.wantSponsor(t, name, a, stOK)
				e.wantToldAbout(t, a, name, evDeleted, evRestored)
				if now := e.identityOf(name); now.ID != identity.ID || !now.RetireTime.IsZero() {
					t.Fatalf("round %d: identity after the restore %+v, want %s in use", round, now, identity.ID)
				}
			case !restored && purged == 1:
				tally["purged"]++
				wantOneOf(t, "RestoreIdentifier", errs[0], outcome{codes.NotFound, "IDENTIFIER_NOT_FOUND"}, concurrentUpdate)
				if i := e.identifier(name); i != nil {
					t.Fatalf("round %d: %s is still there after the purge: %v", round, name, i)
				}
				e.wantToldAbout(t, a, name, evDeleted, evPurged)
				if retired := e.identity(identity.ID); !retired.RetireTime.Equal(late.Now().Truncate(time.Microsecond)) {
					t.Fatalf("round %d: identity after the purge %+v, want it retired at the purge", round, retired)
				}
			default:
				t.Fatalf("round %d: restore: %v; purged %d; want exactly one of them", round, errs[0], purged)
			}
		}
		e.wantNumbered(t, a)
		t.Logf("outcomes of %d rounds: %v", raceRounds, tally)
	})
}
