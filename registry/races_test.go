package registry_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/internal/fakeclock"
	"github.com/id4me/id4me-registry/internal/testdb"
	"github.com/id4me/id4me-registry/registry"
)

// Races: calls that contend for one identifier or one transfer, released together, several
// rounds each, on SQLite and (when ID4ME_TEST_POSTGRES_DSN is set) PostgreSQL. Every round must
// end in exactly one of the outcomes the rules allow, and the store must agree with it: the
// identifier's sponsor and statuses, the transfer's status, and each agent's events.
//
// A call that loses a race is refused either for the state the winner left (the refusal it
// would get if it came later) or, when the two transactions overlapped, with ABORTED
// CONCURRENT_UPDATE, which asks the client to read again and retry.

// raceRounds is how many times each race is run.
const raceRounds = 10

// raceName is the identifier contended for in a round.
func raceName(round int) string { return fmt.Sprintf("race%d.example.test", round) }

// refusal is a kind and reason a racing call may be refused with.
type refusal struct {
	kind   registry.Kind
	reason string
}

// concurrentUpdate is how a call that overlapped the winner's transaction is refused.
var concurrentUpdate = refusal{registry.KindAborted, "CONCURRENT_UPDATE"}

// wantOneOf fails unless err is one of the refusals allowed.
func wantOneOf(t *testing.T, what string, err error, allowed ...refusal) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: got no error, want one of %v", what, allowed)
	}
	if got := (refusal{registry.KindOf(err), string(registry.ReasonOf(err))}); !slices.Contains(allowed, got) {
		t.Fatalf("%s: got %v (%v), want one of %v", what, got, err, allowed)
	}
}

// forEachBackend runs test on SQLite and on PostgreSQL (skipped without its DSN); dsn returns
// a new database of the backend.
func forEachBackend(t *testing.T, test func(t *testing.T, dsn func(testing.TB) string)) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) { test(t, b.DSN) })
	}
}

// wantSponsor checks that identifier name is sponsored by a, with statuses.
func (w *world) wantSponsor(t *testing.T, name string, a registry.Actor, statuses ...registry.Status) {
	t.Helper()
	i, ok := w.identifier(name)
	if !ok {
		t.Fatalf("%s is gone, want it sponsored by %s", name, a.ID)
	}
	if i.AgentID != a.ID {
		t.Fatalf("%s is sponsored by %s, want %s", name, i.AgentID, a.ID)
	}
	wantStatuses(t, name, i.Statuses, statuses...)
}

// wantToldAbout checks agent a's unacknowledged events about identifier name.
func (w *world) wantToldAbout(t *testing.T, a registry.Actor, name string, want ...registry.EventType) {
	t.Helper()
	evs := slices.DeleteFunc(w.events(a), func(e registry.Event) bool { return e.Identifier != name })
	if got := eventTypes(evs); !slices.Equal(got, want) {
		t.Fatalf("%s is told %v about %s, want %v", a.ID, got, name, want)
	}
}

// transfersOf returns agent a's transfers of identifier name, oldest first.
func (w *world) transfersOf(a registry.Actor, name string) []registry.Transfer {
	w.t.Helper()
	ts, _, err := w.svc.ListTransfers(w.ctx, a, registry.TransferBoth, false, registry.MaxPageSize, "")
	if err != nil {
		w.t.Fatalf("ListTransfers: %v", err)
	}
	return slices.DeleteFunc(ts, func(tr registry.Transfer) bool { return tr.Identifier != name })
}

// wantTransfers checks the statuses of agent a's transfers of identifier name, oldest first.
func (w *world) wantTransfers(t *testing.T, a registry.Actor, name string, want ...registry.TransferStatus) {
	t.Helper()
	var got []registry.TransferStatus
	for _, tr := range w.transfersOf(a, name) {
		got = append(got, tr.Status)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s's transfers of %s are %v, want %v", a.ID, name, got, want)
	}
}

// wantChallenge checks the status of one of agent a's challenges.
func (w *world) wantChallenge(t *testing.T, a registry.Actor, id string, want registry.ChallengeStatus) {
	t.Helper()
	c, err := w.svc.GetChallenge(w.ctx, a, id)
	if err != nil || c.Status != want {
		t.Fatalf("challenge %s is %s (%v), want %s", id, c.Status, err, want)
	}
}

// wantNumbered checks that each agent's events, acknowledged or not, are numbered 1, 2, 3, …
// without gaps.
func (w *world) wantNumbered(t *testing.T, agents ...registry.Actor) {
	t.Helper()
	for _, a := range agents {
		for k, ev := range w.allEvents(a) {
			if ev.ID != int64(k+1) {
				t.Fatalf("%s's event %d is numbered %d: the numbering has a gap or a duplicate", a.ID, k+1, ev.ID)
			}
		}
	}
}

// The losing agent approves a pending transfer while the gaining agent cancels it: one of
// them wins, and the identifier moved exactly when the approval won.
func TestRaceApproveCancel(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn func(testing.TB) string) {
		w := newWorldOn(t, dsn(t), pending)
		loser, gainer := w.newAgent("loser"), w.newAgent("gainer")
		lost := []refusal{{registry.KindFailedPrecondition, "TRANSFER_NOT_PENDING"}, concurrentUpdate}
		tally := map[string]int{}
		for round := range raceRounds {
			name := raceName(round)
			w.register(loser, name)
			tr := w.requestTransfer(gainer, name)
			errs := race(2, func(k int) error {
				var err error
				if k == 0 {
					_, err = w.svc.ApproveTransfer(w.ctx, loser, tr.ID)
				} else {
					_, err = w.svc.CancelTransfer(w.ctx, gainer, tr.ID)
				}
				return err
			})
			switch approved, cancelled := errs[0] == nil, errs[1] == nil; {
			case approved && !cancelled:
				tally["approved"]++
				wantOneOf(t, "CancelTransfer", errs[1], lost...)
				w.wantSponsor(t, name, gainer)
				w.wantTransfers(t, loser, name, registry.TransferClientApproved)
				w.wantToldAbout(t, loser, name, registry.EventTransferRequested, registry.EventTransferCompletedOut)
				w.wantToldAbout(t, gainer, name, registry.EventTransferApproved, registry.EventTransferCompletedIn)
			case cancelled && !approved:
				tally["cancelled"]++
				wantOneOf(t, "ApproveTransfer", errs[0], lost...)
				w.wantSponsor(t, name, loser)
				w.wantTransfers(t, loser, name, registry.TransferClientCancelled)
				w.wantToldAbout(t, loser, name, registry.EventTransferRequested, registry.EventTransferCancelled)
				w.wantToldAbout(t, gainer, name)
			default:
				t.Fatalf("round %d: approve: %v; cancel: %v; want exactly one to succeed", round, errs[0], errs[1])
			}
		}
		w.wantNumbered(t, loser, gainer)
		t.Logf("outcomes of %d rounds: %v", raceRounds, tally)
	})
}

// The gaining agent asks for an identifier while its sponsor deletes it. Without a pending
// period one of them wins: the identifier moves, or it is pending delete and the transfer
// challenge stays unused. With one, the transfer may come first and then be cancelled by the
// delete.
func TestRaceRequestTransferDelete(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn func(testing.TB) string) {
		for _, period := range []time.Duration{0, pendingPeriod} {
			t.Run("pending "+period.String(), func(t *testing.T) {
				w := newWorldOn(t, dsn(t), func(c *registry.Config) { c.TransferPendingPeriod = period })
				loser, gainer := w.newAgent("loser"), w.newAgent("gainer")
				tally := map[string]int{}
				for round := range raceRounds {
					name := raceName(round)
					w.register(loser, name)
					c := w.validChallenge(gainer, name, registry.PurposeTransfer)
					errs := race(2, func(k int) error {
						var err error
						if k == 0 {
							_, err = w.svc.RequestTransfer(w.ctx, gainer, c.ID, "")
						} else {
							_, err = w.svc.DeleteIdentifier(w.ctx, loser, name, "")
						}
						return err
					})
					switch requested, deleted := errs[0] == nil, errs[1] == nil; {
					case requested && deleted && period > 0:
						tally["requested, then cancelled by the delete"]++
						w.wantSponsor(t, name, loser, registry.StatusPendingDelete)
						w.wantTransfers(t, loser, name, registry.TransferServerCancelled)
						w.wantToldAbout(t, loser, name, registry.EventTransferRequested, registry.EventTransferCancelled, registry.EventIdentifierDeleted)
						w.wantToldAbout(t, gainer, name, registry.EventTransferCancelled)
					case requested && period > 0:
						tally["requested; delete overlapped"]++
						wantOneOf(t, "DeleteIdentifier", errs[1], concurrentUpdate)
						w.wantSponsor(t, name, loser, registry.StatusPendingTransfer)
						w.wantTransfers(t, loser, name, registry.TransferPending)
						w.wantToldAbout(t, loser, name, registry.EventTransferRequested)
						w.wantToldAbout(t, gainer, name)
					case requested && !deleted:
						tally["transferred"]++
						// The identifier is no longer the losing agent's to delete.
						wantOneOf(t, "DeleteIdentifier", errs[1], refusal{registry.KindNotFound, "IDENTIFIER_NOT_FOUND"}, concurrentUpdate)
						w.wantSponsor(t, name, gainer)
						w.wantTransfers(t, loser, name, registry.TransferServerApproved)
						w.wantToldAbout(t, loser, name, registry.EventTransferCompletedOut)
						w.wantToldAbout(t, gainer, name, registry.EventTransferCompletedIn)
					case deleted && !requested:
						tally["deleted"]++
						wantOneOf(t, "RequestTransfer", errs[0], refusal{registry.KindFailedPrecondition, "IDENTIFIER_PENDING_DELETE"}, concurrentUpdate)
						w.wantSponsor(t, name, loser, registry.StatusPendingDelete)
						w.wantTransfers(t, loser, name)
						w.wantChallenge(t, gainer, c.ID, registry.ChallengeValid)
						w.wantToldAbout(t, loser, name, registry.EventIdentifierDeleted)
						w.wantToldAbout(t, gainer, name)
					default:
						t.Fatalf("round %d: request: %v; delete: %v; not an outcome the rules allow", round, errs[0], errs[1])
					}
				}
				w.wantNumbered(t, loser, gainer)
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
		for _, period := range []time.Duration{0, pendingPeriod} {
			t.Run("pending "+period.String(), func(t *testing.T) {
				w := newWorldOn(t, dsn(t), func(c *registry.Config) { c.TransferPendingPeriod = period })
				loser := w.newAgent("loser")
				gainers := []registry.Actor{w.newAgent("gainer1"), w.newAgent("gainer2")}
				for round := range raceRounds {
					name := raceName(round)
					w.register(loser, name)
					challenges := []registry.Challenge{
						w.validChallenge(gainers[0], name, registry.PurposeTransfer),
						w.validChallenge(gainers[1], name, registry.PurposeTransfer),
					}
					transfers := make([]registry.Transfer, 2)
					errs := race(2, func(k int) (err error) {
						transfers[k], err = w.svc.RequestTransfer(w.ctx, gainers[k], challenges[k].ID, "")
						return err
					})
					if (errs[0] == nil) == (errs[1] == nil) {
						t.Fatalf("round %d: requests ended %v and %v; want exactly one to succeed", round, errs[0], errs[1])
					}
					win, lose := 0, 1
					if errs[0] != nil {
						win, lose = 1, 0
					}
					w.wantChallenge(t, gainers[lose], challenges[lose].ID, registry.ChallengeValid)
					w.wantToldAbout(t, gainers[lose], name)
					if period > 0 {
						wantOneOf(t, "the second RequestTransfer", errs[lose],
							refusal{registry.KindFailedPrecondition, "TRANSFER_PENDING"}, refusal{registry.KindAlreadyExists, "TRANSFER_PENDING"}, concurrentUpdate)
						w.wantSponsor(t, name, loser, registry.StatusPendingTransfer)
						w.wantTransfers(t, loser, name, registry.TransferPending)
						if got := w.transfersOf(loser, name)[0].ID; got != transfers[win].ID {
							t.Fatalf("the pending transfer is %s, want the winner's %s", got, transfers[win].ID)
						}
						w.wantToldAbout(t, loser, name, registry.EventTransferRequested)
						w.wantToldAbout(t, gainers[win], name)
						continue
					}
					wantOneOf(t, "the other RequestTransfer", errs[lose], refusal{registry.KindFailedPrecondition, "SPONSOR_CHANGED"}, concurrentUpdate)
					w.wantSponsor(t, name, gainers[win])
					w.wantTransfers(t, loser, name, registry.TransferServerApproved)
					w.wantTransfers(t, gainers[lose], name)
					w.wantToldAbout(t, loser, name, registry.EventTransferCompletedOut)
					w.wantToldAbout(t, gainers[win], name, registry.EventTransferCompletedIn)
				}
				w.wantNumbered(t, loser, gainers[0], gainers[1])
			})
		}
	})
}

// Two registry instances share one database, their clocks either side of a deleted
// identifier's purge time: one restores it a moment before, the other's sweep purges it a
// moment after. Exactly one happens: restored, the identifier is back with its identity in
// use; purged, it is gone and its identity retired.
func TestRaceRestorePurge(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn func(testing.TB) string) {
		w := newWorldOn(t, dsn(t))
		late := fakeclock.New(w.clock.Now())
		purger := w.instance(func(c *registry.Config) { c.Now = late.Now })
		a := w.newAgent("alpha")
		tally := map[string]int{}
		for round := range raceRounds {
			name := raceName(round)
			identity := w.register(a, name).IdentityID
			purgeTime := w.remove(a, name).PurgeTime
			w.clock.Set(purgeTime.Add(-time.Millisecond))
			late.Set(purgeTime.Add(time.Millisecond))
			var purged int
			errs := race(2, func(k int) (err error) {
				if k == 0 {
					_, err = w.svc.RestoreIdentifier(w.ctx, a, name)
				} else {
					purged, err = purger.SweepPurges(w.ctx)
				}
				return err
			})
			if errs[1] != nil {
				t.Fatalf("round %d: SweepPurges: %v", round, errs[1])
			}
			switch restored := errs[0] == nil; {
			case restored && purged == 0:
				tally["restored"]++
				w.wantSponsor(t, name, a)
				w.wantToldAbout(t, a, name, registry.EventIdentifierDeleted, registry.EventIdentifierRestored)
				if now := w.mustIdentifier(name); now.IdentityID != identity || !w.identity(identity).RetireTime.IsZero() {
					t.Fatalf("round %d: after the restore %+v, want identity %s in use", round, now, identity)
				}
			case !restored && purged == 1:
				tally["purged"]++
				wantOneOf(t, "RestoreIdentifier", errs[0], refusal{registry.KindNotFound, "IDENTIFIER_NOT_FOUND"}, concurrentUpdate)
				if i, ok := w.identifier(name); ok {
					t.Fatalf("round %d: %s is still there after the purge: %+v", round, name, i)
				}
				w.wantToldAbout(t, a, name, registry.EventIdentifierDeleted, registry.EventIdentifierPurged)
				if retired := w.identity(identity); !retired.RetireTime.Equal(late.Now()) {
					t.Fatalf("round %d: identity after the purge %+v, want it retired at the purge", round, retired)
				}
			default:
				t.Fatalf("round %d: restore: %v; purged %d; want exactly one of them", round, errs[0], purged)
			}
		}
		w.wantNumbered(t, a)
		t.Logf("outcomes of %d rounds: %v", raceRounds, tally)
	})
}

// Many changes that concern one agent, made at once, number its events without a gap.
func TestRaceEventNumbering(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn func(testing.TB) string) {
		w := newWorldOn(t, dsn(t))
		a := w.newAgent("alpha")
		const n = 8
		for k := range n {
			w.register(a, raceName(k))
		}
		errs := race(n, func(k int) error {
			_, err := w.svc.SetServerStatus(w.ctx, operator, raceName(k), []registry.Status{registry.StatusServerHold}, "", "")
			return err
		})
		for k, err := range errs {
			if err != nil {
				t.Fatalf("SetServerStatus(%s): %v", raceName(k), err)
			}
		}
		if evs := w.allEvents(a); len(evs) != n {
			t.Fatalf("%d events, want %d", len(evs), n)
		}
		w.wantNumbered(t, a)
	})
}
