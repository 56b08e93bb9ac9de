package registry_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/registry"
)

// The identifier every transition case is about.
const alice = "alice.example.test"

// transferWorld is a world where the losing agent sponsors alice.example.test, the gaining
// agent would like it, and a third agent has nothing to do with it.
type transferWorld struct {
	*world
	loser, gainer, other registry.Actor
	// transfer is the last transfer the gaining agent asked for; zero if none.
	transfer registry.Transfer
	// identityID is the identity alice.example.test was registered with.
	identityID string
	// before is alice.example.test as a case saw it before the call under test, if it looked.
	before registry.IdentifierInfo
}

func newTransferWorld(t *testing.T, opts ...option) *transferWorld {
	t.Helper()
	w := &transferWorld{world: newWorld(t, opts...)}
	w.loser, w.gainer, w.other = w.newAgent("loser"), w.newAgent("gainer"), w.newAgent("other")
	w.identityID = w.register(w.loser, alice).IdentityID
	return w
}

// role names one of the agents of a transferWorld.
type role int

const (
	nobody role = iota
	losing
	gaining
	third
)

func (r role) String() string {
	return [...]string{"nobody", "the losing agent", "the gaining agent", "the third agent"}[r]
}

func (w *transferWorld) actor(r role) registry.Actor {
	return map[role]registry.Actor{losing: w.loser, gaining: w.gainer, third: w.other}[r]
}

// request has the gaining agent ask for alice.example.test with a new valid challenge.
func (w *transferWorld) request() error {
	return w.requestWith(w.validChallenge(w.gainer, alice, registry.PurposeTransfer))
}

// requestWith has the gaining agent ask for the identifier of challenge c.
func (w *transferWorld) requestWith(c registry.Challenge) error {
	tr, err := w.svc.RequestTransfer(w.ctx, w.gainer, c.ID, "")
	if err == nil {
		w.transfer = tr
	}
	return err
}

// mustRequest is request for a case's preparation.
func (w *transferWorld) mustRequest() {
	w.t.Helper()
	if err := w.request(); err != nil {
		w.t.Fatalf("RequestTransfer: %v", err)
	}
}

func (w *transferWorld) approve(a registry.Actor) error {
	_, err := w.svc.ApproveTransfer(w.ctx, a, w.transfer.ID)
	return err
}

func (w *transferWorld) reject(a registry.Actor) error {
	_, err := w.svc.RejectTransfer(w.ctx, a, w.transfer.ID)
	return err
}

func (w *transferWorld) cancel(a registry.Actor) error {
	_, err := w.svc.CancelTransfer(w.ctx, a, w.transfer.ID)
	return err
}

func (w *transferWorld) transferChallenge(a registry.Actor, identifier string) error {
	_, err := w.svc.CreateChallenge(w.ctx, a, identifier, registry.PurposeTransfer)
	return err
}

func (w *transferWorld) del(a registry.Actor) error {
	_, err := w.svc.DeleteIdentifier(w.ctx, a, alice, "")
	return err
}

func (w *transferWorld) restore(a registry.Actor) error {
	_, err := w.svc.RestoreIdentifier(w.ctx, a, alice)
	return err
}

func (w *transferWorld) setClaimsEndpoint(a registry.Actor, url string) error {
	_, err := w.svc.UpdateIdentifier(w.ctx, a, registry.IdentifierUpdate{
		Identifier: alice, ClaimsEndpoint: url, Fields: []registry.IdentifierField{registry.IdentifierFieldClaimsEndpoint},
	})
	return err
}

func (w *transferWorld) setServerStatus(statuses ...registry.Status) error {
	_, err := w.svc.SetServerStatus(w.ctx, operator, alice, statuses, "test", "")
	return err
}

func (w *transferWorld) resolve() (registry.Resolution, error) {
	return w.svc.Resolve(w.ctx, alice)
}

// challengeStatus reads one of the gaining agent's challenges.
func (w *transferWorld) challengeStatus(id string) registry.ChallengeStatus {
	w.t.Helper()
	c, err := w.svc.GetChallenge(w.ctx, w.gainer, id)
	if err != nil {
		w.t.Fatalf("GetChallenge: %v", err)
	}
	return c.Status
}

// sweepTransfers runs the transfer deadline sweep and fails unless it ended want transfers.
func (w *transferWorld) sweepTransfers(want int) {
	w.t.Helper()
	if n := w.sweep(w.svc.SweepTransfers); n != want {
		w.t.Fatalf("at %v the transfer sweep ended %d transfers, want %d", w.clock.Now(), n, want)
	}
}

// sweepPurges runs the purge sweep and fails unless it purged want identifiers.
func (w *transferWorld) sweepPurges(want int) {
	w.t.Helper()
	if n := w.sweep(w.svc.SweepPurges); n != want {
		w.t.Fatalf("at %v the purge sweep purged %d, want %d", w.clock.Now(), n, want)
	}
}

type transitionCase struct {
	name string
	// opts configure the world; without pending, transfers complete at once.
	opts []option
	// act prepares the case and makes the call under test, whose error it returns.
	act func(w *transferWorld) error
	// kind and reason are what the call is refused with; no reason: it succeeds.
	kind   registry.Kind
	reason string
	// sponsor sponsors alice.example.test afterwards (nobody: it is gone), with statuses.
	sponsor  role
	statuses []registry.Status
	// transfer is the status of the gaining agent's transfer afterwards; "" when it asked for
	// none or was refused.
	transfer registry.TransferStatus
	// events are each agent's unacknowledged events afterwards; none for an agent not named.
	events map[role][]registry.EventType
	// told are the agents whose last event tells the identifier's statuses after the call.
	told []role
	// check, if set, checks what else the case is about.
	check func(t *testing.T, w *transferWorld)
}

// Every lifecycle transition of an identifier, and every refused one: the call's outcome, and
// the identifier, transfer and event queues it leaves behind.
func TestLifecycleTransitions(t *testing.T) {
	const (
		cTP = registry.StatusClientTransferProhibited
		cDP = registry.StatusClientDeleteProhibited
		cUP = registry.StatusClientUpdateProhibited
		sH  = registry.StatusServerHold
		sTP = registry.StatusServerTransferProhibited
		sDP = registry.StatusServerDeleteProhibited
		sUP = registry.StatusServerUpdateProhibited
		pD  = registry.StatusPendingDelete
		pT  = registry.StatusPendingTransfer

		requested    = registry.EventTransferRequested
		approved     = registry.EventTransferApproved
		rejected     = registry.EventTransferRejected
		cancelled    = registry.EventTransferCancelled
		completedIn  = registry.EventTransferCompletedIn
		completedOut = registry.EventTransferCompletedOut
		deleted      = registry.EventIdentifierDeleted
		restored     = registry.EventIdentifierRestored
		purged       = registry.EventIdentifierPurged
		serverStatus = registry.EventServerStatusChanged
	)
	precondition, denied, notFound := registry.KindFailedPrecondition, registry.KindPermissionDenied, registry.KindNotFound
	withPending := []option{pending}
	cases := []transitionCase{
		// Transfers without a pending period.
		{
			name: "transfer completes at once", act: func(w *transferWorld) error {
				w.update(w.loser, alice, "https://claims.loser.agent.test/alice", cDP, cUP)
				return w.request()
			},
			sponsor: gaining, transfer: registry.TransferServerApproved,
			events: map[role][]registry.EventType{losing: {completedOut}, gaining: {completedIn}},
			told:   []role{losing, gaining},
			check: func(t *testing.T, w *transferWorld) {
				i, err := w.svc.GetIdentifier(w.ctx, w.gainer, alice)
				if err != nil || i.ClaimsEndpoint != "" || i.EffectiveClaimsEndpoint != w.agent(w.gainer).ClaimsEndpoint {
					t.Errorf("GetIdentifier = %+v, %v; want the override cleared and the gaining agent's default", i, err)
				}
				tr := w.transfer
				if tr.Identifier != alice || tr.GainingAgentID != w.gainer.ID || tr.LosingAgentID != w.loser.ID || !tr.ActTime.Equal(tr.RequestTime) {
					t.Errorf("transfer %+v, want alice.example.test from loser to gainer, acted on when requested", tr)
				}
				if st := w.challengeStatus(tr.ChallengeID); st != registry.ChallengeConsumed {
					t.Errorf("the transfer challenge is %s, want consumed", st)
				}
				if r, err := w.resolve(); err != nil || r.AgentID != w.gainer.ID || r.ClaimsEndpoint != w.agent(w.gainer).ClaimsEndpoint || r.AgentIssuer != w.agent(w.gainer).Issuer {
					t.Errorf("Resolve = %+v, %v; want the gaining agent, its claims endpoint and issuer", r, err)
				}
				_, err = w.svc.GetIdentifier(w.ctx, w.loser, alice)
				wantErr(t, err, notFound, "IDENTIFIER_NOT_FOUND")
				if got := w.mustIdentifier(alice); got.IdentityID != w.identityID {
					t.Errorf("identity %s after the transfer, want %s", got.IdentityID, w.identityID)
				}
				if got := actions(w.journal("identifier", alice)); !slices.Equal(got, []string{"identifier.register", "identifier.update", "identifier.transfer"}) {
					t.Errorf("identifier journal %v", got)
				}
				if got := actions(w.journal("transfer", tr.ID)); !slices.Equal(got, []string{"transfer.request"}) {
					t.Errorf("transfer journal %v", got)
				}
			},
		},
		{
			name: "server statuses survive a transfer", act: func(w *transferWorld) error {
				w.serverStatus(alice, "dispute", sDP)
				return w.request()
			},
			sponsor: gaining, statuses: []registry.Status{sDP}, transfer: registry.TransferServerApproved,
			events: map[role][]registry.EventType{losing: {serverStatus, completedOut}, gaining: {completedIn}},
			told:   []role{losing, gaining},
		},
		{
			name: "a second gaining agent's proof made under the old sponsor is refused", act: func(w *transferWorld) error {
				c := w.validChallenge(w.other, alice, registry.PurposeTransfer)
				w.mustRequest()
				_, err := w.svc.RequestTransfer(w.ctx, w.other, c.ID, "")
				if st, _ := w.svc.GetChallenge(w.ctx, w.other, c.ID); st.Status != registry.ChallengeValid {
					w.t.Errorf("the refused challenge is %s, want still valid", st.Status)
				}
				return err
			},
			kind: precondition, reason: "SPONSOR_CHANGED",
			sponsor: gaining, transfer: registry.TransferServerApproved,
			events: map[role][]registry.EventType{losing: {completedOut}, gaining: {completedIn}},
		},

		// Transfers with a pending period.
		{
			name: "transfer waits for the losing agent", opts: withPending, act: (*transferWorld).request,
			sponsor: losing, statuses: []registry.Status{pT}, transfer: registry.TransferPending,
			events: map[role][]registry.EventType{losing: {requested}},
			told:   []role{losing},
			check: func(t *testing.T, w *transferWorld) {
				tr := w.transfer
				if want := tr.RequestTime.Add(pendingPeriod); !tr.ActTime.Equal(want) {
					t.Errorf("pending transfer acts at %v, want %v", tr.ActTime, want)
				}
				ev := w.events(w.loser)[0]
				if ev.Identifier != alice || ev.Data.Transfer == nil || ev.Data.Transfer.ID != tr.ID || ev.Data.Transfer.Status != registry.TransferPending {
					t.Errorf("requested event %+v, want the pending transfer", ev)
				}
				if r, err := w.resolve(); err != nil || r.AgentID != w.loser.ID {
					t.Errorf("a pending transfer changed resolution: %+v, %v", r, err)
				}
				if st := w.challengeStatus(tr.ChallengeID); st != registry.ChallengeConsumed {
					t.Errorf("the transfer challenge is %s, want consumed", st)
				}
			},
		},
		{
			name: "update refused while a transfer is pending", opts: withPending, act: func(w *transferWorld) error {
				w.mustRequest()
				return w.setClaimsEndpoint(w.loser, "https://claims.loser.agent.test/alice")
			},
			kind: precondition, reason: "TRANSFER_PENDING",
			sponsor: losing, statuses: []registry.Status{pT}, transfer: registry.TransferPending,
			events: map[role][]registry.EventType{losing: {requested}},
		},
		{
			name: "losing agent approves", opts: withPending, act: func(w *transferWorld) error {
				w.mustRequest()
				return w.approve(w.loser)
			},
			sponsor: gaining, transfer: registry.TransferClientApproved,
			events: map[role][]registry.EventType{losing: {requested, completedOut}, gaining: {approved, completedIn}},
			told:   []role{losing, gaining},
			check: func(t *testing.T, w *transferWorld) {
				if got := actions(w.journal("transfer", w.transfer.ID)); !slices.Equal(got, []string{"transfer.request", "transfer.approve"}) {
					t.Errorf("transfer journal %v", got)
				}
				if got := w.mustIdentifier(alice); got.IdentityID != w.identityID {
					t.Errorf("identity %s after the transfer, want %s", got.IdentityID, w.identityID)
				}
			},
		},
		{
			name: "losing agent rejects", opts: withPending, act: func(w *transferWorld) error {
				w.mustRequest()
				return w.reject(w.loser)
			},
			sponsor: losing, transfer: registry.TransferClientRejected,
			events: map[role][]registry.EventType{losing: {requested}, gaining: {rejected}},
			told:   []role{gaining},
			check: func(t *testing.T, w *transferWorld) {
				if got := actions(w.journal("transfer", w.transfer.ID)); !slices.Equal(got, []string{"transfer.request", "transfer.reject"}) {
					t.Errorf("transfer journal %v", got)
				}
			},
		},
		{
			name: "gaining agent cancels", opts: withPending, act: func(w *transferWorld) error {
				w.mustRequest()
				return w.cancel(w.gainer)
			},
			sponsor: losing, transfer: registry.TransferClientCancelled,
			events: map[role][]registry.EventType{losing: {requested, cancelled}},
			told:   []role{losing},
		},
		{
			name: "losing agent rejects under serverTransferProhibited", opts: withPending, act: func(w *transferWorld) error {
				w.mustRequest()
				w.serverStatus(alice, "dispute", sTP)
				return w.reject(w.loser)
			},
			sponsor: losing, statuses: []registry.Status{sTP}, transfer: registry.TransferClientRejected,
			events: map[role][]registry.EventType{losing: {requested, serverStatus}, gaining: {rejected}},
			told:   []role{gaining},
		},
		{
			name: "gaining agent cancels under serverHold", opts: withPending, act: func(w *transferWorld) error {
				w.mustRequest()
				w.serverStatus(alice, "abuse", sH)
				return w.cancel(w.gainer)
			},
			sponsor: losing, statuses: []registry.Status{sH}, transfer: registry.TransferClientCancelled,
			events: map[role][]registry.EventType{losing: {requested, serverStatus, cancelled}},
			told:   []role{losing},
		},
		{
			name: "gaining agent cannot approve", opts: withPending, act: func(w *transferWorld) error {
				w.mustRequest()
				return w.approve(w.gainer)
			},
			kind: denied, reason: "LOSING_AGENT_ONLY",
			sponsor: losing, statuses: []registry.Status{pT}, transfer: registry.TransferPending,
			events: map[role][]registry.EventType{losing: {requested}},
		},
		{
			name: "gaining agent cannot reject", opts: withPending, act: func(w *transferWorld) error {
				w.mustRequest()
				return w.reject(w.gainer)
			},
			kind: denied, reason: "LOSING_AGENT_ONLY",
			sponsor: losing, statuses: []registry.Status{pT}, transfer: registry.TransferPending,
			events: map[role][]registry.EventType{losing: {requested}},
		},
		{
			name: "losing agent cannot cancel", opts: withPending, act: func(w *transferWorld) error {
				w.mustRequest()
				return w.cancel(w.loser)
			},
			kind: denied, reason: "GAINING_AGENT_ONLY",
			sponsor: losing, statuses: []registry.Status{pT}, transfer: registry.TransferPending,
			events: map[role][]registry.EventType{losing: {requested}},
		},
		{
			name: "an operator is neither party", opts: withPending, act: func(w *transferWorld) error {
				w.mustRequest()
				if got, err := w.svc.GetTransfer(w.ctx, operator, w.transfer.ID); err != nil || got.ID != w.transfer.ID {
					w.t.Errorf("the operator reads %+v, %v; want the transfer", got, err)
				}
				wantErr(w.t, w.cancel(operator), denied, "GAINING_AGENT_ONLY")
				return w.approve(operator)
			},
			kind: denied, reason: "LOSING_AGENT_ONLY",
			sponsor: losing, statuses: []registry.Status{pT}, transfer: registry.TransferPending,
			events: map[role][]registry.EventType{losing: {requested}},
		},
		{
			name: "third agent sees no transfer", opts: withPending, act: func(w *transferWorld) error {
				w.mustRequest()
				return w.approve(w.other)
			},
			kind: notFound, reason: "TRANSFER_NOT_FOUND",
			sponsor: losing, statuses: []registry.Status{pT}, transfer: registry.TransferPending,
			events: map[role][]registry.EventType{losing: {requested}},
			check: func(t *testing.T, w *transferWorld) {
				wantErr(t, w.reject(w.other), notFound, "TRANSFER_NOT_FOUND")
				wantErr(t, w.cancel(w.other), notFound, "TRANSFER_NOT_FOUND")
				_, err := w.svc.GetTransfer(w.ctx, w.other, w.transfer.ID)
				wantErr(t, err, notFound, "TRANSFER_NOT_FOUND")
				list, _, err := w.svc.ListTransfers(w.ctx, w.other, registry.TransferBoth, false, 0, "")
				if err != nil || len(list) != 0 {
					t.Errorf("the third agent lists %v, %v; want nothing", list, err)
				}
			},
		},
		{
			name: "approving a transfer that ended", opts: withPending, act: func(w *transferWorld) error {
				w.mustRequest()
				if err := w.reject(w.loser); err != nil {
					w.t.Fatal(err)
				}
				return w.approve(w.loser)
			},
			kind: precondition, reason: "TRANSFER_NOT_PENDING",
			sponsor: losing, transfer: registry.TransferClientRejected,
			events: map[role][]registry.EventType{losing: {requested}, gaining: {rejected}},
			check: func(t *testing.T, w *transferWorld) {
				wantErr(t, w.reject(w.loser), precondition, "TRANSFER_NOT_PENDING")
				wantErr(t, w.cancel(w.gainer), precondition, "TRANSFER_NOT_PENDING")
			},
		},
		{
			name: "registry approves at the deadline", opts: withPending, act: func(w *transferWorld) error {
				w.mustRequest()
				w.clock.Set(w.transfer.ActTime.Add(-time.Second))
				w.sweepTransfers(0)
				w.clock.Set(w.transfer.ActTime)
				w.sweepTransfers(1)
				return nil
			},
			sponsor: gaining, transfer: registry.TransferServerApproved,
			events: map[role][]registry.EventType{losing: {requested, approved, completedOut}, gaining: {approved, completedIn}},
			told:   []role{losing, gaining},
			check: func(t *testing.T, w *transferWorld) {
				if r, err := w.resolve(); err != nil || r.AgentID != w.gainer.ID {
					t.Errorf("Resolve after the sweep = %+v, %v; want the gaining agent", r, err)
				}
				w.sweepTransfers(0)
			},
		},
		{
			name: "approval refused under serverTransferProhibited", opts: withPending, act: func(w *transferWorld) error {
				w.mustRequest()
				w.serverStatus(alice, "dispute", sTP)
				return w.approve(w.loser)
			},
			kind: precondition, reason: "IDENTIFIER_TRANSFER_PROHIBITED",
			sponsor: losing, statuses: []registry.Status{pT, sTP}, transfer: registry.TransferPending,
			events: map[role][]registry.EventType{losing: {requested, serverStatus}},
		},
		{
			name: "approval refused under serverHold", opts: withPending, act: func(w *transferWorld) error {
				w.mustRequest()
				w.serverStatus(alice, "abuse", sH)
				return w.approve(w.loser)
			},
			kind: precondition, reason: "IDENTIFIER_TRANSFER_PROHIBITED",
			sponsor: losing, statuses: []registry.Status{pT, sH}, transfer: registry.TransferPending,
			events: map[role][]registry.EventType{losing: {requested, serverStatus}},
		},
		{
			name: "registry cancels at the deadline under serverTransferProhibited", opts: withPending, act: func(w *transferWorld) error {
				w.mustRequest()
				w.serverStatus(alice, "dispute", sTP)
				w.clock.Set(w.transfer.ActTime)
				w.sweepTransfers(1)
				return nil
			},
			sponsor: losing, statuses: []registry.Status{sTP}, transfer: registry.TransferServerCancelled,
			events: map[role][]registry.EventType{losing: {requested, serverStatus, cancelled}, gaining: {cancelled}},
			told:   []role{losing, gaining},
		},
		{
			name: "registry cancels at the deadline under serverHold", opts: withPending, act: func(w *transferWorld) error {
				w.mustRequest()
				w.serverStatus(alice, "abuse", sH)
				w.clock.Set(w.transfer.ActTime)
				w.sweepTransfers(1)
				return nil
			},
			sponsor: losing, statuses: []registry.Status{sH}, transfer: registry.TransferServerCancelled,
			events: map[role][]registry.EventType{losing: {requested, serverStatus, cancelled}, gaining: {cancelled}},
			told:   []role{losing, gaining},
		},
		{
			name: "deleting cancels a pending transfer", opts: withPending, act: func(w *transferWorld) error {
				w.mustRequest()
				return w.del(w.loser)
			},
			sponsor: losing, statuses: []registry.Status{pD}, transfer: registry.TransferServerCancelled,
			events: map[role][]registry.EventType{losing: {requested, cancelled, deleted}, gaining: {cancelled}},
			told:   []role{losing, gaining},
			check: func(t *testing.T, w *transferWorld) {
				// Nothing is left for the deadline.
				w.clock.Set(w.transfer.ActTime)
				w.sweepTransfers(0)
				if got := actions(w.journal("transfer", w.transfer.ID)); !slices.Equal(got, []string{"transfer.request", "transfer.cancel"}) {
					t.Errorf("transfer journal %v", got)
				}
			},
		},
		{
			name: "a restore does not bring a cancelled transfer back", opts: withPending, act: func(w *transferWorld) error {
				w.mustRequest()
				w.remove(w.loser, alice)
				return w.restore(w.loser)
			},
			sponsor: losing, transfer: registry.TransferServerCancelled,
			events: map[role][]registry.EventType{losing: {requested, cancelled, deleted, restored}, gaining: {cancelled}},
			told:   []role{losing},
		},

		// Transfers refused. Before the DNS proof an agent learns of another agent's
		// identifier only that it is registered: the statuses refuse the request, not the
		// challenge.
		{
			name: "clientTransferProhibited does not show before the proof", act: func(w *transferWorld) error {
				w.update(w.loser, alice, "", cTP)
				return w.transferChallenge(w.gainer, alice)
			},
			sponsor: losing, statuses: []registry.Status{cTP},
		},
		{
			name: "clientTransferProhibited refuses the request", act: func(w *transferWorld) error {
				c := w.validChallenge(w.gainer, alice, registry.PurposeTransfer)
				w.update(w.loser, alice, "", cTP)
				return w.requestWith(c)
			},
			kind: precondition, reason: "IDENTIFIER_TRANSFER_PROHIBITED",
			sponsor: losing, statuses: []registry.Status{cTP},
		},
		{
			name: "serverTransferProhibited does not show before the proof", act: func(w *transferWorld) error {
				w.serverStatus(alice, "dispute", sTP)
				return w.transferChallenge(w.gainer, alice)
			},
			sponsor: losing, statuses: []registry.Status{sTP},
			events: map[role][]registry.EventType{losing: {serverStatus}},
		},
		{
			name: "serverTransferProhibited refuses the request", opts: withPending, act: func(w *transferWorld) error {
				c := w.validChallenge(w.gainer, alice, registry.PurposeTransfer)
				w.serverStatus(alice, "dispute", sTP)
				return w.requestWith(c)
			},
			kind: precondition, reason: "IDENTIFIER_TRANSFER_PROHIBITED",
			sponsor: losing, statuses: []registry.Status{sTP},
			events: map[role][]registry.EventType{losing: {serverStatus}},
		},
		{
			name: "serverHold does not show before the proof", act: func(w *transferWorld) error {
				w.serverStatus(alice, "abuse", sH)
				return w.transferChallenge(w.gainer, alice)
			},
			sponsor: losing, statuses: []registry.Status{sH},
			events: map[role][]registry.EventType{losing: {serverStatus}},
		},
		{
			name: "serverHold refuses the request", act: func(w *transferWorld) error {
				c := w.validChallenge(w.gainer, alice, registry.PurposeTransfer)
				w.serverStatus(alice, "abuse", sH)
				return w.requestWith(c)
			},
			kind: precondition, reason: "IDENTIFIER_ON_HOLD",
			sponsor: losing, statuses: []registry.Status{sH},
			events: map[role][]registry.EventType{losing: {serverStatus}},
		},
		{
			name: "pending delete does not show before the proof", act: func(w *transferWorld) error {
				w.remove(w.loser, alice)
				return w.transferChallenge(w.gainer, alice)
			},
			sponsor: losing, statuses: []registry.Status{pD},
			events: map[role][]registry.EventType{losing: {deleted}},
		},
		{
			name: "pending delete refuses the request", act: func(w *transferWorld) error {
				c := w.validChallenge(w.gainer, alice, registry.PurposeTransfer)
				w.remove(w.loser, alice)
				err := w.requestWith(c)
				if st := w.challengeStatus(c.ID); st != registry.ChallengeValid {
					w.t.Errorf("the refused challenge is %s, want still valid", st)
				}
				return err
			},
			kind: precondition, reason: "IDENTIFIER_PENDING_DELETE",
			sponsor: losing, statuses: []registry.Status{pD},
			events: map[role][]registry.EventType{losing: {deleted}},
		},
		{
			name: "a pending transfer does not show before another's proof", opts: withPending, act: func(w *transferWorld) error {
				w.mustRequest()
				return w.transferChallenge(w.other, alice)
			},
			sponsor: losing, statuses: []registry.Status{pT}, transfer: registry.TransferPending,
			events: map[role][]registry.EventType{losing: {requested}},
		},
		{
			name: "a pending transfer refuses another's request", opts: withPending, act: func(w *transferWorld) error {
				c := w.validChallenge(w.other, alice, registry.PurposeTransfer)
				w.mustRequest()
				_, err := w.svc.RequestTransfer(w.ctx, w.other, c.ID, "")
				return err
			},
			kind: precondition, reason: "TRANSFER_PENDING",
			sponsor: losing, statuses: []registry.Status{pT}, transfer: registry.TransferPending,
			events: map[role][]registry.EventType{losing: {requested}},
		},
		{
			name: "the sponsor cannot transfer to itself", act: func(w *transferWorld) error {
				return w.transferChallenge(w.loser, alice)
			},
			kind: precondition, reason: "ALREADY_SPONSOR",
			sponsor: losing,
		},
		{
			name: "the new sponsor cannot use its proof again", act: func(w *transferWorld) error {
				c := w.validChallenge(w.gainer, alice, registry.PurposeTransfer)
				w.transfer = w.requestTransfer(w.gainer, alice)
				_, err := w.svc.RequestTransfer(w.ctx, w.gainer, c.ID, "")
				return err
			},
			kind: precondition, reason: "ALREADY_SPONSOR",
			sponsor: gaining, transfer: registry.TransferServerApproved,
			events: map[role][]registry.EventType{losing: {completedOut}, gaining: {completedIn}},
		},
		{
			name: "a name not registered cannot be transferred", act: func(w *transferWorld) error {
				return w.transferChallenge(w.gainer, "nobody.example.test")
			},
			kind: notFound, reason: "IDENTIFIER_NOT_FOUND",
			sponsor: losing,
		},
		{
			name: "a register challenge cannot transfer", act: func(w *transferWorld) error {
				return w.requestWith(w.validChallenge(w.gainer, "bob.example.test", registry.PurposeRegister))
			},
			kind: precondition, reason: "CHALLENGE_PURPOSE_MISMATCH",
			sponsor: losing,
		},
		{
			name: "a transfer challenge cannot register", act: func(w *transferWorld) error {
				c := w.validChallenge(w.gainer, alice, registry.PurposeTransfer)
				_, err := w.svc.RegisterIdentifier(w.ctx, w.gainer, c.ID, "", "")
				return err
			},
			kind: precondition, reason: "CHALLENGE_PURPOSE_MISMATCH",
			sponsor: losing,
		},
		{
			name: "a challenge not verified cannot transfer", act: func(w *transferWorld) error {
				c, err := w.svc.CreateChallenge(w.ctx, w.gainer, alice, registry.PurposeTransfer)
				if err != nil {
					w.t.Fatal(err)
				}
				return w.requestWith(c)
			},
			kind: precondition, reason: "CHALLENGE_NOT_VALID",
			sponsor: losing,
		},
		{
			name: "an expired challenge cannot transfer", act: func(w *transferWorld) error {
				c := w.validChallenge(w.gainer, alice, registry.PurposeTransfer)
				w.clock.Set(c.ExpireTime)
				return w.requestWith(c)
			},
			kind: precondition, reason: "CHALLENGE_EXPIRED",
			sponsor: losing,
		},
		{
			name: "another agent's challenge cannot transfer", act: func(w *transferWorld) error {
				c := w.validChallenge(w.other, alice, registry.PurposeTransfer)
				return w.requestWith(c)
			},
			kind: notFound, reason: "CHALLENGE_NOT_FOUND",
			sponsor: losing,
		},
		{
			name: "a challenge transfers once", opts: withPending, act: func(w *transferWorld) error {
				w.mustRequest()
				if err := w.reject(w.loser); err != nil {
					w.t.Fatal(err)
				}
				_, err := w.svc.RequestTransfer(w.ctx, w.gainer, w.transfer.ChallengeID, "")
				return err
			},
			kind: precondition, reason: "CHALLENGE_CONSUMED",
			sponsor: losing, transfer: registry.TransferClientRejected,
			events: map[role][]registry.EventType{losing: {requested}, gaining: {rejected}},
		},

		// Deletion, restoration and purge.
		{
			name: "delete starts the redemption period", act: func(w *transferWorld) error { return w.del(w.loser) },
			sponsor: losing, statuses: []registry.Status{pD},
			events: map[role][]registry.EventType{losing: {deleted}},
			told:   []role{losing},
			check: func(t *testing.T, w *transferWorld) {
				i := w.mustIdentifier(alice)
				if !i.DeleteTime.Equal(start) || !i.PurgeTime.Equal(i.DeleteTime.Add(redemptionPeriod)) {
					t.Errorf("deleted at %v, purged at %v; want the purge a redemption period after the delete", i.DeleteTime, i.PurgeTime)
				}
				if ev := w.events(w.loser)[0]; !ev.Data.PurgeTime.Equal(i.PurgeTime) {
					t.Errorf("deleted event says purge at %v, want %v", ev.Data.PurgeTime, i.PurgeTime)
				}
				_, err := w.resolve()
				wantErr(t, err, notFound, notResolvedPendingDelete)
				if got, err := w.svc.GetIdentifier(w.ctx, w.loser, alice); err != nil || !got.PurgeTime.Equal(i.PurgeTime) {
					t.Errorf("the sponsor reads %+v, %v while pending delete", got, err)
				}
				if id := w.identity(w.identityID); !id.RetireTime.IsZero() {
					t.Errorf("identity retired during the redemption period: %+v", id)
				}
				_, err = w.svc.CreateChallenge(w.ctx, w.other, alice, registry.PurposeRegister)
				wantErr(t, err, registry.KindAlreadyExists, "IDENTIFIER_TAKEN")
			},
		},
		{
			name: "update refused while pending delete", act: func(w *transferWorld) error {
				w.remove(w.loser, alice)
				return w.setClaimsEndpoint(w.loser, "https://claims.loser.agent.test/alice")
			},
			kind: precondition, reason: "IDENTIFIER_PENDING_DELETE",
			sponsor: losing, statuses: []registry.Status{pD},
			events: map[role][]registry.EventType{losing: {deleted}},
		},
		{
			name: "delete refused while pending delete", act: func(w *transferWorld) error {
				w.remove(w.loser, alice)
				return w.del(w.loser)
			},
			kind: precondition, reason: "IDENTIFIER_PENDING_DELETE",
			sponsor: losing, statuses: []registry.Status{pD},
			events: map[role][]registry.EventType{losing: {deleted}},
		},
		{
			name: "delete refused to another agent", act: func(w *transferWorld) error { return w.del(w.other) },
			kind: notFound, reason: "IDENTIFIER_NOT_FOUND",
			sponsor: losing,
		},
		{
			name: "restore brings it back unchanged", act: func(w *transferWorld) error {
				w.before = w.update(w.loser, alice, "https://claims.loser.agent.test/alice", cTP)
				w.remove(w.loser, alice)
				w.clock.Advance(redemptionPeriod - time.Second)
				return w.restore(w.loser)
			},
			sponsor: losing, statuses: []registry.Status{cTP},
			events: map[role][]registry.EventType{losing: {deleted, restored}},
			told:   []role{losing},
			check: func(t *testing.T, w *transferWorld) {
				i := w.mustIdentifier(alice)
				if i.ClaimsEndpoint != w.before.ClaimsEndpoint || !i.CreateTime.Equal(w.before.CreateTime) || !i.DeleteTime.IsZero() || !i.PurgeTime.IsZero() {
					t.Errorf("restored %+v, want as before the delete: %+v", i, w.before.Identifier)
				}
				if i.IdentityID != w.identityID {
					t.Errorf("identity %s after the restore, want %s", i.IdentityID, w.identityID)
				}
				if r, err := w.resolve(); err != nil || r.ClaimsEndpoint != w.before.ClaimsEndpoint {
					t.Errorf("Resolve after the restore = %+v, %v", r, err)
				}
				// Nothing is left to purge.
				w.clock.Advance(redemptionPeriod)
				w.sweepPurges(0)
			},
		},
		{
			name: "restore refused when not deleted", act: func(w *transferWorld) error { return w.restore(w.loser) },
			kind: precondition, reason: "IDENTIFIER_NOT_PENDING_DELETE",
			sponsor: losing,
		},
		{
			name: "restore refused to another agent", act: func(w *transferWorld) error {
				w.remove(w.loser, alice)
				return w.restore(w.other)
			},
			kind: notFound, reason: "IDENTIFIER_NOT_FOUND",
			sponsor: losing, statuses: []registry.Status{pD},
			events: map[role][]registry.EventType{losing: {deleted}},
		},
		{
			name: "restore refused at the purge time", act: func(w *transferWorld) error {
				w.clock.Set(w.remove(w.loser, alice).PurgeTime)
				return w.restore(w.loser)
			},
			kind: precondition, reason: "REDEMPTION_PERIOD_OVER",
			sponsor: losing, statuses: []registry.Status{pD},
			events: map[role][]registry.EventType{losing: {deleted}},
		},
		{
			name: "clientDeleteProhibited refuses delete", act: func(w *transferWorld) error {
				w.update(w.loser, alice, "", cDP)
				return w.del(w.loser)
			},
			kind: precondition, reason: "IDENTIFIER_DELETE_PROHIBITED",
			sponsor: losing, statuses: []registry.Status{cDP},
		},
		{
			name: "serverDeleteProhibited refuses delete", act: func(w *transferWorld) error {
				w.serverStatus(alice, "court order", sDP)
				return w.del(w.loser)
			},
			kind: precondition, reason: "IDENTIFIER_DELETE_PROHIBITED",
			sponsor: losing, statuses: []registry.Status{sDP},
			events: map[role][]registry.EventType{losing: {serverStatus}},
		},
		{
			name: "an identifier on hold can be deleted", act: func(w *transferWorld) error {
				w.serverStatus(alice, "abuse", sH)
				return w.del(w.loser)
			},
			sponsor: losing, statuses: []registry.Status{sH, pD},
			events: map[role][]registry.EventType{losing: {serverStatus, deleted}},
			told:   []role{losing},
		},
		{
			name: "purge at the end of the redemption period", act: func(w *transferWorld) error {
				purge := w.remove(w.loser, alice).PurgeTime
				w.clock.Set(purge.Add(-time.Second))
				w.sweepPurges(0)
				w.clock.Set(purge)
				w.sweepPurges(1)
				return nil
			},
			sponsor: nobody,
			events:  map[role][]registry.EventType{losing: {deleted, purged}},
			check: func(t *testing.T, w *transferWorld) {
				_, err := w.svc.GetIdentifier(w.ctx, w.loser, alice)
				wantErr(t, err, notFound, "IDENTIFIER_NOT_FOUND")
				_, err = w.resolve()
				wantErr(t, err, notFound, "IDENTIFIER_NOT_FOUND")
				wantErr(t, w.restore(w.loser), notFound, "IDENTIFIER_NOT_FOUND")
				if id := w.identity(w.identityID); !id.RetireTime.Equal(w.clock.Now()) {
					t.Errorf("identity %+v, want it retired at the purge", id)
				}
				if got := actions(w.journal("identifier", alice)); !slices.Equal(got, []string{"identifier.register", "identifier.delete", "identifier.purge"}) {
					t.Errorf("identifier journal %v", got)
				}
				i := w.register(w.gainer, alice)
				if i.AgentID != w.gainer.ID || i.IdentityID == w.identityID || w.identity(i.IdentityID).SubjectSeed == w.identity(w.identityID).SubjectSeed {
					t.Errorf("registered again: %+v; want the gaining agent's, with a new identity and subject seed", i)
				}
				if old := w.identity(w.identityID); old.RetireTime.IsZero() {
					t.Errorf("the old identity came back into use: %+v", old)
				}
			},
		},

		// Server statuses.
		{
			name: "serverHold stops resolution", act: func(w *transferWorld) error { return w.setServerStatus(sH) },
			sponsor: losing, statuses: []registry.Status{sH},
			events: map[role][]registry.EventType{losing: {serverStatus}},
			told:   []role{losing},
			check: func(t *testing.T, w *transferWorld) {
				_, err := w.resolve()
				wantErr(t, err, notFound, notResolvedOnHold)
				ev := w.events(w.loser)[0]
				if ev.Data.Reason != "test" || len(ev.Data.PreviousStatuses) != 0 {
					t.Errorf("server status event %+v, want the reason and no statuses before", ev.Data)
				}
				j := w.journal("identifier", alice)
				last := j[len(j)-1]
				if last.Action != "identifier.server_status" || last.Actor != "operator:op_test" || last.Before == "" || !strings.Contains(last.After, `"reason":"test"`) {
					t.Errorf("last journal entry %+v, want the operator's server status change with its reason", last)
				}
				if _, err := w.svc.GetIdentifier(w.ctx, w.loser, alice); err != nil {
					t.Errorf("the sponsor cannot read its identifier on hold: %v", err)
				}
			},
		},
		{
			name: "clearing serverHold resumes resolution", act: func(w *transferWorld) error {
				w.serverStatus(alice, "abuse", sH)
				return w.setServerStatus()
			},
			sponsor: losing,
			events:  map[role][]registry.EventType{losing: {serverStatus, serverStatus}},
			told:    []role{losing},
			check: func(t *testing.T, w *transferWorld) {
				if _, err := w.resolve(); err != nil {
					t.Errorf("Resolve after the hold = %v", err)
				}
				if ev := w.events(w.loser)[1]; !slices.Equal(ev.Data.PreviousStatuses, []registry.Status{sH}) {
					t.Errorf("second event's previous statuses %v, want the hold", ev.Data.PreviousStatuses)
				}
				if got := actions(w.journal("identifier", alice)); !slices.Equal(got, []string{"identifier.register", "identifier.server_status", "identifier.server_status"}) {
					t.Errorf("identifier journal %v", got)
				}
			},
		},
		{
			name: "serverUpdateProhibited refuses updates", act: func(w *transferWorld) error {
				w.serverStatus(alice, "dispute", sUP)
				return w.setClaimsEndpoint(w.loser, "https://claims.loser.agent.test/alice")
			},
			kind: precondition, reason: "IDENTIFIER_UPDATE_PROHIBITED",
			sponsor: losing, statuses: []registry.Status{sUP},
			events: map[role][]registry.EventType{losing: {serverStatus}},
		},
		{
			name: "client statuses are not the operator's", act: func(w *transferWorld) error {
				return w.setServerStatus(sH, cTP)
			},
			kind: registry.KindInvalidArgument, reason: "STATUS_NOT_SERVER_SETTABLE",
			sponsor: losing,
			check: func(t *testing.T, w *transferWorld) {
				wantErr(t, w.setServerStatus(pD), registry.KindInvalidArgument, "STATUS_NOT_SERVER_SETTABLE")
				wantErr(t, w.setServerStatus(pT), registry.KindInvalidArgument, "STATUS_NOT_SERVER_SETTABLE")
				if got := actions(w.journal("identifier", alice)); !slices.Equal(got, []string{"identifier.register"}) {
					t.Errorf("identifier journal %v", got)
				}
			},
		},
		{
			name: "the statuses in force change nothing", act: func(w *transferWorld) error {
				w.serverStatus(alice, "abuse", sH)
				return w.setServerStatus(sH)
			},
			sponsor: losing, statuses: []registry.Status{sH},
			events: map[role][]registry.EventType{losing: {serverStatus}},
			check: func(t *testing.T, w *transferWorld) {
				if got := actions(w.journal("identifier", alice)); !slices.Equal(got, []string{"identifier.register", "identifier.server_status"}) {
					t.Errorf("identifier journal %v", got)
				}
			},
		},
		{
			name: "server statuses leave client and lifecycle statuses alone", opts: withPending, act: func(w *transferWorld) error {
				w.update(w.loser, alice, "", cDP)
				w.mustRequest()
				w.serverStatus(alice, "abuse", sH, sUP)
				return w.setServerStatus(sUP)
			},
			sponsor: losing, statuses: []registry.Status{cDP, pT, sUP}, transfer: registry.TransferPending,
			events: map[role][]registry.EventType{losing: {requested, serverStatus, serverStatus}},
			told:   []role{losing},
		},
		{
			name: "server statuses may be set while pending delete", act: func(w *transferWorld) error {
				w.remove(w.loser, alice)
				return w.setServerStatus(sDP)
			},
			sponsor: losing, statuses: []registry.Status{pD, sDP},
			events: map[role][]registry.EventType{losing: {deleted, serverStatus}},
			told:   []role{losing},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newTransferWorld(t, tc.opts...)
			err := tc.act(w)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
			} else {
				wantErr(t, err, tc.kind, tc.reason)
			}
			w.wantIdentifier(t, tc.sponsor, tc.statuses)
			w.wantTransfer(t, tc.transfer)
			for _, r := range []role{losing, gaining, third} {
				if got := eventTypes(w.events(w.actor(r))); !slices.Equal(got, tc.events[r]) {
					t.Fatalf("%v's events are %v, want %v", r, got, tc.events[r])
				}
			}
			w.wantEventsConsistent(t)
			for _, r := range tc.told {
				w.wantTold(t, r)
			}
			if tc.check != nil {
				tc.check(t, w)
			}
		})
	}
}

// wantIdentifier checks who sponsors alice.example.test, if anyone, and its statuses.
func (w *transferWorld) wantIdentifier(t *testing.T, sponsor role, statuses []registry.Status) {
	t.Helper()
	i, ok := w.identifier(alice)
	switch {
	case sponsor == nobody && ok:
		t.Fatalf("alice.example.test is sponsored by %s, want it gone", i.AgentID)
	case sponsor == nobody:
		return
	case !ok:
		t.Fatalf("alice.example.test is gone, want it sponsored by %v", sponsor)
	case i.AgentID != w.actor(sponsor).ID:
		t.Fatalf("alice.example.test is sponsored by %s, want %v (%s)", i.AgentID, sponsor, w.actor(sponsor).ID)
	}
	wantStatuses(t, alice, i.Statuses, statuses...)
}

// wantTransfer checks that the gaining agent's transfer, if any, has status want and is the
// only transfer the losing agent has.
func (w *transferWorld) wantTransfer(t *testing.T, want registry.TransferStatus) {
	t.Helper()
	list, _, err := w.svc.ListTransfers(w.ctx, w.loser, registry.TransferBoth, false, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if want == "" {
		if len(list) != 0 {
			t.Fatalf("the losing agent has transfers %+v, want none", list)
		}
		return
	}
	if len(list) != 1 || list[0].ID != w.transfer.ID {
		t.Fatalf("the losing agent has transfers %+v, want only %s", list, w.transfer.ID)
	}
	for _, a := range []registry.Actor{w.loser, w.gainer} {
		got, err := w.svc.GetTransfer(w.ctx, a, w.transfer.ID)
		if err != nil || got.Status != want {
			t.Fatalf("transfer is %s to %s (%v), want %s", got.Status, a.ID, err, want)
		}
	}
}

// transferStatusesOf are the statuses the transfer of an event of each type can have: the
// transfer as it was after the change the event tells of.
var transferStatusesOf = map[registry.EventType][]registry.TransferStatus{
	registry.EventTransferRequested:    {registry.TransferPending},
	registry.EventTransferApproved:     {registry.TransferClientApproved, registry.TransferServerApproved},
	registry.EventTransferRejected:     {registry.TransferClientRejected},
	registry.EventTransferCancelled:    {registry.TransferClientCancelled, registry.TransferServerCancelled},
	registry.EventTransferCompletedIn:  {registry.TransferClientApproved, registry.TransferServerApproved},
	registry.EventTransferCompletedOut: {registry.TransferClientApproved, registry.TransferServerApproved},
}

// wantEventsConsistent checks that each agent's events are numbered 1, 2, 3, …, are about
// alice.example.test, and that a transfer event carries the transfer in a status that fits it.
func (w *transferWorld) wantEventsConsistent(t *testing.T) {
	t.Helper()
	for _, r := range []role{losing, gaining, third} {
		evs := w.allEvents(w.actor(r))
		for k, ev := range evs {
			if ev.ID != int64(k+1) || ev.AgentID != w.actor(r).ID || ev.Identifier != alice {
				t.Fatalf("%v's events are %+v, want numbered 1, 2, 3, … and about %s", r, evs, alice)
			}
			if want, ok := transferStatusesOf[ev.Type]; ok && (ev.Data.Transfer == nil || ev.Data.Transfer.ID != w.transfer.ID || !slices.Contains(want, ev.Data.Transfer.Status)) {
				t.Fatalf("%v's event %s carries transfer %+v, want %s in one of %v", r, ev.Type, ev.Data.Transfer, w.transfer.ID, want)
			}
		}
	}
}

// wantTold checks that the last event of r tells the identifier's statuses as they are now,
// after the change it tells of.
func (w *transferWorld) wantTold(t *testing.T, r role) {
	t.Helper()
	evs := w.events(w.actor(r))
	if len(evs) == 0 {
		t.Fatalf("%v has no events", r)
	}
	last := evs[len(evs)-1]
	wantStatuses(t, string(last.Type)+" told to "+r.String(), last.Data.Statuses, w.mustIdentifier(alice).Statuses...)
}

// A transfer changes the sponsor, not the holder: the identity, and so the subject relying
// parties know the holder by, stays, however the transfer completes.
func TestTransferKeepsIdentity(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     []option
		complete func(w *transferWorld)
	}{
		{"at once", nil, func(*transferWorld) {}},
		{"approved", []option{pending}, func(w *transferWorld) {
			if err := w.approve(w.loser); err != nil {
				w.t.Fatal(err)
			}
		}},
		{"at the deadline", []option{pending}, func(w *transferWorld) {
			w.clock.Set(w.transfer.ActTime)
			w.sweepTransfers(1)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newTransferWorld(t, tc.opts...)
			before := w.identity(w.identityID)
			w.mustRequest()
			tc.complete(w)
			i := w.mustIdentifier(alice)
			if i.AgentID != w.gainer.ID {
				t.Fatalf("alice.example.test is sponsored by %s, want the gaining agent", i.AgentID)
			}
			if after := w.identity(i.IdentityID); after != before {
				t.Fatalf("identity after the transfer %+v, want %+v unchanged", after, before)
			}
			seed, err := w.resolver.SubjectSeed(w.ctx, i.IdentityID)
			if err != nil || seed != before.SubjectSeed {
				t.Fatalf("SubjectSeed = %q, %v; want the seed of before", seed, err)
			}
		})
	}
}

// A transfer moves the identifier with its server statuses, drops the losing agent's claims
// endpoint override and client statuses, and has the _openid record checked again soon: it
// should name the new agent.
func TestTransferMovesTheIdentifier(t *testing.T) {
	w := newTransferWorld(t, pending)
	w.update(w.loser, alice, "https://claims.loser.agent.test/alice", registry.StatusClientDeleteProhibited)
	w.serverStatus(alice, "dispute", registry.StatusServerDeleteProhibited)
	w.dns.setOpenID(alice, openidRecord(authorityHost, "loser.agent.test"))
	w.clock.Advance(24 * time.Hour)
	if n := w.sweep(w.svc.SweepOpenID); n != 1 {
		t.Fatalf("SweepOpenID checked %d, want 1", n)
	}
	before := w.mustIdentifier(alice)
	if before.OpenID.Status != "MATCHES" || !before.OpenID.NextCheck.Equal(w.clock.Now().Add(24*time.Hour)) {
		t.Fatalf("the check before the transfer: %+v", before.OpenID)
	}
	w.mustRequest()
	if err := w.approve(w.loser); err != nil {
		t.Fatal(err)
	}
	after := w.mustIdentifier(alice)
	wantStatuses(t, "after the transfer", after.Statuses, registry.StatusServerDeleteProhibited)
	if after.ClaimsEndpoint != "" || after.LinkGeneration != before.LinkGeneration+1 || after.Version <= before.Version {
		t.Fatalf("after the transfer: %+v; want no override, the next link generation and a new version", after)
	}
	if want := w.clock.Now().Add(10 * time.Minute); !after.OpenID.NextCheck.Equal(want) || after.OpenID.Status != before.OpenID.Status {
		t.Fatalf("the _openid check after the transfer: %+v; want the last outcome kept and the next check at %v", after.OpenID, want)
	}
	// The record still names the losing agent: the next check says so.
	w.clock.Advance(10 * time.Minute)
	if n := w.sweep(w.svc.SweepOpenID); n != 1 {
		t.Fatalf("SweepOpenID checked %d, want 1", n)
	}
	if got := w.mustIdentifier(alice).OpenID; got.Status != "MISMATCH" {
		t.Fatalf("the check after the transfer: %+v; want a mismatch (clp names the losing agent)", got)
	}
	evs := w.events(w.gainer)
	if last := evs[len(evs)-1]; last.Type != registry.EventOpenIDRecordChanged {
		t.Fatalf("the gaining agent's last event is %s, want %s", last.Type, registry.EventOpenIDRecordChanged)
	}
}
