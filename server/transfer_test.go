package server_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

// The identifier every lifecycle case is about.
const alice = "alice.example.test"

// transferWorld is a registry where the losing agent sponsors alice.example.test, the gaining
// agent would like it, and a third agent has nothing to do with it.
type transferWorld struct {
	*env
	loser, gainer, other testAgent
	// transfer is the last transfer the gaining agent asked for, if any.
	transfer *registryv1.Transfer
	// identityID is the identity alice.example.test was registered with.
	identityID string
	// before is alice.example.test as a case saw it before the call under test, if it looked.
	before *registryv1.Identifier
}

func newTransferWorld(t *testing.T, pending time.Duration) *transferWorld {
	e := newEnv(t, lifecycleOptions(pending))
	w := &transferWorld{env: e, loser: e.newAgent("loser"), gainer: e.newAgent("gainer"), other: e.newAgent("other")}
	e.register(w.loser, alice)
	w.identityID = e.identityOf(alice).ID
	return w
}

// role names one of the agents of a transferWorld.
type role int

const (
	nobody role = iota
	losingAgent
	gainingAgent
	thirdAgent
)

func (r role) String() string {
	return [...]string{"nobody", "the losing agent", "the gaining agent", "the third agent"}[r]
}

func (w *transferWorld) agent(r role) testAgent {
	return map[role]testAgent{losingAgent: w.loser, gainingAgent: w.gainer, thirdAgent: w.other}[r]
}

// request has the gaining agent ask for alice.example.test with a new valid challenge.
func (w *transferWorld) request() error {
	return w.requestWith(w.transferChallenge(w.gainer, alice))
}

// requestWith has the gaining agent ask for the identifier of challenge c.
func (w *transferWorld) requestWith(c *registryv1.Challenge) error {
	tr, err := w.registry.RequestTransfer(w.gainer.ctx(), &registryv1.RequestTransferRequest{ChallengeId: c.Id})
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

func (w *transferWorld) approve(a testAgent) error {
	_, err := w.registry.ApproveTransfer(a.ctx(), &registryv1.ApproveTransferRequest{Id: w.transfer.Id})
	return err
}

func (w *transferWorld) reject(a testAgent) error {
	_, err := w.registry.RejectTransfer(a.ctx(), &registryv1.RejectTransferRequest{Id: w.transfer.Id})
	return err
}

func (w *transferWorld) cancel(a testAgent) error {
	_, err := w.registry.CancelTransfer(a.ctx(), &registryv1.CancelTransferRequest{Id: w.transfer.Id})
	return err
}

func (w *transferWorld) createTransferChallenge(a testAgent, identifier string) error {
	_, err := w.registry.CreateChallenge(a.ctx(), &registryv1.CreateChallengeRequest{Identifier: identifier, Purpose: registryv1.Purpose_PURPOSE_TRANSFER})
	return err
}

func (w *transferWorld) remove(a testAgent) error {
	_, err := w.registry.DeleteIdentifier(a.ctx(), &registryv1.DeleteIdentifierRequest{Identifier: alice})
	return err
}

func (w *transferWorld) restore(a testAgent) error {
	_, err := w.registry.RestoreIdentifier(a.ctx(), &registryv1.RestoreIdentifierRequest{Identifier: alice})
	return err
}

func (w *transferWorld) setClaimsEndpoint(a testAgent, url string) error {
	_, err := w.registry.UpdateIdentifier(a.ctx(), &registryv1.UpdateIdentifierRequest{
		Identifier: &registryv1.Identifier{Name: alice, ClaimsEndpoint: url},
	})
	return err
}

func (w *transferWorld) setServerStatus(statuses ...registryv1.IdentifierStatus) error {
	_, err := w.adminAPI.SetServerStatus(as(w.admin), &registryv1.SetServerStatusRequest{Identifier: alice, Statuses: statuses, Reason: "test"})
	return err
}

func (w *transferWorld) resolve() error {
	_, err := w.resolver.ResolveIdentifier(as(w.admin), &registryv1.ResolveIdentifierRequest{Identifier: alice})
	return err
}

// challengeStatus reads one of the gaining agent's challenges.
func (w *transferWorld) challengeStatus(id string) registryv1.Challenge_Status {
	w.t.Helper()
	c, err := w.registry.GetChallenge(w.gainer.ctx(), &registryv1.GetChallengeRequest{Id: id})
	if err != nil {
		w.t.Fatalf("GetChallenge: %v", err)
	}
	return c.Status
}

// journal returns the actions journaled for alice.example.test, oldest first.
func (w *transferWorld) journal() []*registryv1.JournalEntry {
	w.t.Helper()
	j, err := w.adminAPI.ListJournal(as(w.admin), &registryv1.ListJournalRequest{ObjectType: "identifier", ObjectId: alice, PageSize: 1000})
	if err != nil {
		w.t.Fatalf("ListJournal: %v", err)
	}
	return j.Entries
}

type lifecycleCase struct {
	name string
	// pending makes transfers wait transferPendingPeriod; otherwise they complete at once.
	pending bool
	// act prepares the case and makes the call under test, whose error it returns.
	act func(w *transferWorld) error
	// code and reason are what the call ends with; codes.OK for success.
	code   codes.Code
	reason string
	// sponsor sponsors alice.example.test afterwards (nobody: it is gone), with statuses.
	sponsor  role
	statuses []registryv1.IdentifierStatus
	// transfer is the status of the gaining agent's transfer afterwards; unset when it asked
	// for none or was refused.
	transfer registryv1.Transfer_Status
	// events are each agent's unacknowledged events afterwards; none for an agent not named.
	events map[role][]registryv1.Event_Type
	// told are the agents whose last event tells the identifier's statuses after the call.
	told []role
	// check, if set, checks what else the case is about.
	check func(t *testing.T, w *transferWorld)
}

// Every lifecycle transition of an identifier, and every refused one, through the API: the
// call's outcome, and the identifier, transfer and event queues it leaves behind.
func TestLifecycleTransitions(t *testing.T) {
	cases := []lifecycleCase{
		// Transfers without a pending period.
		{
			name: "transfer completes at once", act: func(w *transferWorld) error {
				w.update(w.loser, alice, "https://claims.loser.agent.test/alice", stClientDeleteProhibited, stClientUpdateProhibited)
				return w.request()
			},
			sponsor: gainingAgent, statuses: []registryv1.IdentifierStatus{stOK}, transfer: registryv1.Transfer_STATUS_SERVER_APPROVED,
			events: map[role][]registryv1.Event_Type{losingAgent: {evCompletedOut}, gainingAgent: {evCompletedIn}},
			told:   []role{losingAgent, gainingAgent},
			check: func(t *testing.T, w *transferWorld) {
				i := w.identifier(alice)
				if i.ClaimsEndpoint != "" || i.EffectiveClaimsEndpoint != w.gainer.agent.ClaimsEndpoint {
					t.Errorf("claims endpoint %q (effective %q), want the override cleared and the gaining agent's default", i.ClaimsEndpoint, i.EffectiveClaimsEndpoint)
				}
				tr := w.transfer
				if tr.Identifier != alice || tr.GainingAgentId != w.gainer.agent.Id || tr.LosingAgentId != w.loser.agent.Id ||
					!tr.ActTime.AsTime().Equal(tr.RequestTime.AsTime()) {
					t.Errorf("transfer %v, want alice.example.test from loser to gainer, acted on when requested", tr)
				}
				if st := w.challengeStatus(tr.ChallengeId); st != registryv1.Challenge_STATUS_CONSUMED {
					t.Errorf("the transfer challenge is %v, want consumed", st)
				}
				res, err := w.resolver.ResolveIdentifier(as(w.admin), &registryv1.ResolveIdentifierRequest{Identifier: alice})
				if err != nil || res.AgentId != w.gainer.agent.Id || res.ClaimsEndpoint != w.gainer.agent.ClaimsEndpoint {
					t.Errorf("ResolveIdentifier = %v, %v; want the gaining agent and its claims endpoint", res, err)
				}
				_, err = w.registry.GetIdentifier(w.loser.ctx(), &registryv1.GetIdentifierRequest{Identifier: alice})
				wantStatus(t, err, codes.NotFound, "IDENTIFIER_NOT_FOUND")
				if id := w.identityOf(alice).ID; id != w.identityID {
					t.Errorf("identity %s after the transfer, want %s", id, w.identityID)
				}
			},
		},
		{
			name: "server statuses survive a transfer", act: func(w *transferWorld) error {
				w.serverStatus(alice, "dispute", stServerDeleteProhibited)
				return w.request()
			},
			sponsor: gainingAgent, statuses: []registryv1.IdentifierStatus{stServerDeleteProhibited}, transfer: registryv1.Transfer_STATUS_SERVER_APPROVED,
			events: map[role][]registryv1.Event_Type{losingAgent: {evServerStatus, evCompletedOut}, gainingAgent: {evCompletedIn}},
			told:   []role{losingAgent, gainingAgent},
		},

		// Transfers with a pending period.
		{
			name: "transfer waits for the losing agent", pending: true, act: (*transferWorld).request,
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stPendingTransfer}, transfer: registryv1.Transfer_STATUS_PENDING,
			events: map[role][]registryv1.Event_Type{losingAgent: {evRequested}},
			told:   []role{losingAgent},
			check: func(t *testing.T, w *transferWorld) {
				tr := w.transfer
				if want := tr.RequestTime.AsTime().Add(transferPendingPeriod); !tr.ActTime.AsTime().Equal(want) {
					t.Errorf("pending transfer acts at %v, want %v", tr.ActTime.AsTime(), want)
				}
				ev := w.events(w.loser)[0]
				if ev.Identifier != alice || ev.Transfer.GetId() != tr.Id || ev.Transfer.GetStatus() != registryv1.Transfer_STATUS_PENDING {
					t.Errorf("requested event %v, want the pending transfer", ev)
				}
				if err := w.resolve(); err != nil {
					t.Errorf("a pending transfer stopped the identifier resolving: %v", err)
				}
			},
		},
		{
			name: "update refused while a transfer is pending", pending: true, act: func(w *transferWorld) error {
				w.mustRequest()
				return w.setClaimsEndpoint(w.loser, "https://claims.loser.agent.test/alice")
			},
			code: codes.FailedPrecondition, reason: "TRANSFER_PENDING",
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stPendingTransfer}, transfer: registryv1.Transfer_STATUS_PENDING,
			events: map[role][]registryv1.Event_Type{losingAgent: {evRequested}},
		},
		{
			name: "losing agent approves", pending: true, act: func(w *transferWorld) error {
				w.mustRequest()
				return w.approve(w.loser)
			},
			sponsor: gainingAgent, statuses: []registryv1.IdentifierStatus{stOK}, transfer: registryv1.Transfer_STATUS_CLIENT_APPROVED,
			events: map[role][]registryv1.Event_Type{losingAgent: {evRequested, evCompletedOut}, gainingAgent: {evApproved, evCompletedIn}},
			told:   []role{losingAgent, gainingAgent},
		},
		{
			name: "losing agent rejects", pending: true, act: func(w *transferWorld) error {
				w.mustRequest()
				return w.reject(w.loser)
			},
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stOK}, transfer: registryv1.Transfer_STATUS_CLIENT_REJECTED,
			events: map[role][]registryv1.Event_Type{losingAgent: {evRequested}, gainingAgent: {evRejected}},
			told:   []role{gainingAgent},
		},
		{
			name: "gaining agent cancels", pending: true, act: func(w *transferWorld) error {
				w.mustRequest()
				return w.cancel(w.gainer)
			},
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stOK}, transfer: registryv1.Transfer_STATUS_CLIENT_CANCELLED,
			events: map[role][]registryv1.Event_Type{losingAgent: {evRequested, evCancelled}},
			told:   []role{losingAgent},
		},
		{
			name: "gaining agent cannot approve", pending: true, act: func(w *transferWorld) error {
				w.mustRequest()
				return w.approve(w.gainer)
			},
			code: codes.PermissionDenied, reason: "LOSING_AGENT_ONLY",
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stPendingTransfer}, transfer: registryv1.Transfer_STATUS_PENDING,
			events: map[role][]registryv1.Event_Type{losingAgent: {evRequested}},
		},
		{
			name: "gaining agent cannot reject", pending: true, act: func(w *transferWorld) error {
				w.mustRequest()
				return w.reject(w.gainer)
			},
			code: codes.PermissionDenied, reason: "LOSING_AGENT_ONLY",
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stPendingTransfer}, transfer: registryv1.Transfer_STATUS_PENDING,
			events: map[role][]registryv1.Event_Type{losingAgent: {evRequested}},
		},
		{
			name: "losing agent cannot cancel", pending: true, act: func(w *transferWorld) error {
				w.mustRequest()
				return w.cancel(w.loser)
			},
			code: codes.PermissionDenied, reason: "GAINING_AGENT_ONLY",
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stPendingTransfer}, transfer: registryv1.Transfer_STATUS_PENDING,
			events: map[role][]registryv1.Event_Type{losingAgent: {evRequested}},
		},
		{
			name: "third agent sees no transfer", pending: true, act: func(w *transferWorld) error {
				w.mustRequest()
				return w.approve(w.other)
			},
			code: codes.NotFound, reason: "TRANSFER_NOT_FOUND",
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stPendingTransfer}, transfer: registryv1.Transfer_STATUS_PENDING,
			events: map[role][]registryv1.Event_Type{losingAgent: {evRequested}},
			check: func(t *testing.T, w *transferWorld) {
				wantStatus(t, w.reject(w.other), codes.NotFound, "TRANSFER_NOT_FOUND")
				wantStatus(t, w.cancel(w.other), codes.NotFound, "TRANSFER_NOT_FOUND")
				_, err := w.registry.GetTransfer(w.other.ctx(), &registryv1.GetTransferRequest{Id: w.transfer.Id})
				wantStatus(t, err, codes.NotFound, "TRANSFER_NOT_FOUND")
				list, err := w.registry.ListTransfers(w.other.ctx(), &registryv1.ListTransfersRequest{})
				if err != nil || len(list.Transfers) != 0 {
					t.Errorf("the third agent lists %v, %v; want nothing", list, err)
				}
			},
		},
		{
			name: "approving a transfer that ended", pending: true, act: func(w *transferWorld) error {
				w.mustRequest()
				if err := w.reject(w.loser); err != nil {
					w.t.Fatal(err)
				}
				return w.approve(w.loser)
			},
			code: codes.FailedPrecondition, reason: "TRANSFER_NOT_PENDING",
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stOK}, transfer: registryv1.Transfer_STATUS_CLIENT_REJECTED,
			events: map[role][]registryv1.Event_Type{losingAgent: {evRequested}, gainingAgent: {evRejected}},
		},
		{
			name: "registry approves at the deadline", pending: true, act: func(w *transferWorld) error {
				w.mustRequest()
				w.setClock(w.transfer.ActTime.AsTime().Add(-time.Second))
				if n := w.sweepTransfers(); n != 0 {
					w.t.Fatalf("a second before the deadline the sweep ended %d transfers, want 0", n)
				}
				w.setClock(w.transfer.ActTime.AsTime())
				if n := w.sweepTransfers(); n != 1 {
					w.t.Fatalf("at the deadline the sweep ended %d transfers, want 1", n)
				}
				return nil
			},
			sponsor: gainingAgent, statuses: []registryv1.IdentifierStatus{stOK}, transfer: registryv1.Transfer_STATUS_SERVER_APPROVED,
			events: map[role][]registryv1.Event_Type{losingAgent: {evRequested, evApproved, evCompletedOut}, gainingAgent: {evApproved, evCompletedIn}},
			told:   []role{losingAgent, gainingAgent},
		},
		{
			name: "approval refused under serverTransferProhibited", pending: true, act: func(w *transferWorld) error {
				w.mustRequest()
				w.serverStatus(alice, "dispute", stServerTransferProhibited)
				return w.approve(w.loser)
			},
			code: codes.FailedPrecondition, reason: "IDENTIFIER_TRANSFER_PROHIBITED",
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stPendingTransfer, stServerTransferProhibited}, transfer: registryv1.Transfer_STATUS_PENDING,
			events: map[role][]registryv1.Event_Type{losingAgent: {evRequested, evServerStatus}},
		},
		{
			name: "registry cancels at the deadline under serverTransferProhibited", pending: true, act: func(w *transferWorld) error {
				w.mustRequest()
				w.serverStatus(alice, "dispute", stServerTransferProhibited)
				w.setClock(w.transfer.ActTime.AsTime())
				if n := w.sweepTransfers(); n != 1 {
					w.t.Fatalf("at the deadline the sweep ended %d transfers, want 1", n)
				}
				return nil
			},
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stServerTransferProhibited}, transfer: registryv1.Transfer_STATUS_SERVER_CANCELLED,
			events: map[role][]registryv1.Event_Type{losingAgent: {evRequested, evServerStatus, evCancelled}, gainingAgent: {evCancelled}},
			told:   []role{losingAgent, gainingAgent},
		},
		{
			name: "deleting cancels a pending transfer", pending: true, act: func(w *transferWorld) error {
				w.mustRequest()
				return w.remove(w.loser)
			},
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stPendingDelete}, transfer: registryv1.Transfer_STATUS_SERVER_CANCELLED,
			events: map[role][]registryv1.Event_Type{losingAgent: {evRequested, evCancelled, evDeleted}, gainingAgent: {evCancelled}},
			told:   []role{losingAgent, gainingAgent},
			check: func(t *testing.T, w *transferWorld) {
				// Nothing is left for the deadline.
				w.setClock(w.transfer.ActTime.AsTime())
				if n := w.sweepTransfers(); n != 0 {
					t.Errorf("the sweep ended %d transfers after the delete, want 0", n)
				}
			},
		},

		// Transfers refused.
		{
			name: "clientTransferProhibited does not show before the proof", act: func(w *transferWorld) error {
				w.update(w.loser, alice, "", stClientTransferProhibited)
				return w.createTransferChallenge(w.gainer, alice)
			},
			code: codes.OK, reason: "",
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stClientTransferProhibited},
		},
		{
			name: "clientTransferProhibited refuses the request", act: func(w *transferWorld) error {
				c := w.transferChallenge(w.gainer, alice)
				w.update(w.loser, alice, "", stClientTransferProhibited)
				return w.requestWith(c)
			},
			code: codes.FailedPrecondition, reason: "IDENTIFIER_TRANSFER_PROHIBITED",
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stClientTransferProhibited},
		},
		{
			name: "serverTransferProhibited does not show before the proof", act: func(w *transferWorld) error {
				w.serverStatus(alice, "dispute", stServerTransferProhibited)
				return w.createTransferChallenge(w.gainer, alice)
			},
			code: codes.OK, reason: "",
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stServerTransferProhibited},
			events: map[role][]registryv1.Event_Type{losingAgent: {evServerStatus}},
		},
		{
			name: "serverTransferProhibited refuses the request", pending: true, act: func(w *transferWorld) error {
				c := w.transferChallenge(w.gainer, alice)
				w.serverStatus(alice, "dispute", stServerTransferProhibited)
				return w.requestWith(c)
			},
			code: codes.FailedPrecondition, reason: "IDENTIFIER_TRANSFER_PROHIBITED",
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stServerTransferProhibited},
			events: map[role][]registryv1.Event_Type{losingAgent: {evServerStatus}},
		},
		{
			name: "serverHold does not show before the proof", act: func(w *transferWorld) error {
				w.serverStatus(alice, "abuse", stServerHold)
				return w.createTransferChallenge(w.gainer, alice)
			},
			code: codes.OK, reason: "",
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stServerHold},
			events: map[role][]registryv1.Event_Type{losingAgent: {evServerStatus}},
		},
		{
			name: "serverHold refuses the request", act: func(w *transferWorld) error {
				c := w.transferChallenge(w.gainer, alice)
				w.serverStatus(alice, "abuse", stServerHold)
				return w.requestWith(c)
			},
			code: codes.FailedPrecondition, reason: "IDENTIFIER_ON_HOLD",
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stServerHold},
			events: map[role][]registryv1.Event_Type{losingAgent: {evServerStatus}},
		},
		{
			name: "pending delete does not show before the proof", act: func(w *transferWorld) error {
				w.deleteIdentifier(w.loser, alice)
				return w.createTransferChallenge(w.gainer, alice)
			},
			code: codes.OK, reason: "",
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stPendingDelete},
			events: map[role][]registryv1.Event_Type{losingAgent: {evDeleted}},
		},
		{
			name: "pending delete refuses the request", act: func(w *transferWorld) error {
				c := w.transferChallenge(w.gainer, alice)
				w.deleteIdentifier(w.loser, alice)
				return w.requestWith(c)
			},
			code: codes.FailedPrecondition, reason: "IDENTIFIER_PENDING_DELETE",
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stPendingDelete},
			events: map[role][]registryv1.Event_Type{losingAgent: {evDeleted}},
		},
		{
			name: "a pending transfer does not show before another's proof", pending: true, act: func(w *transferWorld) error {
				w.mustRequest()
				return w.createTransferChallenge(w.other, alice)
			},
			code: codes.OK, reason: "",
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stPendingTransfer}, transfer: registryv1.Transfer_STATUS_PENDING,
			events: map[role][]registryv1.Event_Type{losingAgent: {evRequested}},
		},
		{
			name: "a pending transfer refuses another's request", pending: true, act: func(w *transferWorld) error {
				c := w.transferChallenge(w.other, alice)
				w.mustRequest()
				_, err := w.registry.RequestTransfer(w.other.ctx(), &registryv1.RequestTransferRequest{ChallengeId: c.Id})
				return err
			},
			code: codes.FailedPrecondition, reason: "TRANSFER_PENDING",
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stPendingTransfer}, transfer: registryv1.Transfer_STATUS_PENDING,
			events: map[role][]registryv1.Event_Type{losingAgent: {evRequested}},
		},
		{
			name: "the sponsor cannot transfer to itself", act: func(w *transferWorld) error {
				return w.createTransferChallenge(w.loser, alice)
			},
			code: codes.FailedPrecondition, reason: "ALREADY_SPONSOR",
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stOK},
		},
		{
			name: "a name not registered cannot be transferred", act: func(w *transferWorld) error {
				return w.createTransferChallenge(w.gainer, "nobody.example.test")
			},
			code: codes.NotFound, reason: "IDENTIFIER_NOT_FOUND",
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stOK},
		},
		{
			name: "a register challenge cannot transfer", act: func(w *transferWorld) error {
				return w.requestWith(w.validChallenge(w.gainer, "bob.example.test"))
			},
			code: codes.FailedPrecondition, reason: "CHALLENGE_PURPOSE_MISMATCH",
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stOK},
		},
		{
			name: "a transfer challenge cannot register", act: func(w *transferWorld) error {
				c := w.transferChallenge(w.gainer, alice)
				_, err := w.registry.RegisterIdentifier(w.gainer.ctx(), &registryv1.RegisterIdentifierRequest{ChallengeId: c.Id})
				return err
			},
			code: codes.FailedPrecondition, reason: "CHALLENGE_PURPOSE_MISMATCH",
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stOK},
		},
		{
			name: "a challenge not verified cannot transfer", act: func(w *transferWorld) error {
				c, err := w.registry.CreateChallenge(w.gainer.ctx(), &registryv1.CreateChallengeRequest{Identifier: alice, Purpose: registryv1.Purpose_PURPOSE_TRANSFER})
				if err != nil {
					w.t.Fatal(err)
				}
				return w.requestWith(c)
			},
			code: codes.FailedPrecondition, reason: "CHALLENGE_NOT_VALID",
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stOK},
		},
		{
			name: "a challenge transfers once", pending: true, act: func(w *transferWorld) error {
				w.mustRequest()
				if err := w.reject(w.loser); err != nil {
					w.t.Fatal(err)
				}
				_, err := w.registry.RequestTransfer(w.gainer.ctx(), &registryv1.RequestTransferRequest{ChallengeId: w.transfer.ChallengeId})
				return err
			},
			code: codes.FailedPrecondition, reason: "CHALLENGE_CONSUMED",
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stOK}, transfer: registryv1.Transfer_STATUS_CLIENT_REJECTED,
			events: map[role][]registryv1.Event_Type{losingAgent: {evRequested}, gainingAgent: {evRejected}},
		},

		// Deletion, restoration and purge.
		{
			name: "delete starts the redemption period", act: func(w *transferWorld) error { return w.remove(w.loser) },
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stPendingDelete},
			events: map[role][]registryv1.Event_Type{losingAgent: {evDeleted}},
			told:   []role{losingAgent},
			check: func(t *testing.T, w *transferWorld) {
				i := w.identifier(alice)
				if i.DeleteTime == nil || !i.PurgeTime.AsTime().Equal(i.DeleteTime.AsTime().Add(redemptionPeriod)) {
					t.Errorf("deleted at %v, purged at %v; want the purge a redemption period after the delete", i.DeleteTime, i.PurgeTime)
				}
				if ev := w.events(w.loser)[0]; !ev.PurgeTime.AsTime().Equal(i.PurgeTime.AsTime()) {
					t.Errorf("deleted event says purge at %v, want %v", ev.PurgeTime, i.PurgeTime)
				}
				wantStatus(t, w.resolve(), codes.NotFound, "NOT_RESOLVED_PENDING_DELETE")
			},
		},
		{
			name: "update refused while pending delete", act: func(w *transferWorld) error {
				w.deleteIdentifier(w.loser, alice)
				return w.setClaimsEndpoint(w.loser, "https://claims.loser.agent.test/alice")
			},
			code: codes.FailedPrecondition, reason: "IDENTIFIER_PENDING_DELETE",
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stPendingDelete},
			events: map[role][]registryv1.Event_Type{losingAgent: {evDeleted}},
		},
		{
			name: "delete refused while pending delete", act: func(w *transferWorld) error {
				w.deleteIdentifier(w.loser, alice)
				return w.remove(w.loser)
			},
			code: codes.FailedPrecondition, reason: "IDENTIFIER_PENDING_DELETE",
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stPendingDelete},
			events: map[role][]registryv1.Event_Type{losingAgent: {evDeleted}},
		},
		{
			name: "restore brings it back unchanged", act: func(w *transferWorld) error {
				w.before = w.update(w.loser, alice, "https://claims.loser.agent.test/alice", stClientTransferProhibited)
				w.deleteIdentifier(w.loser, alice)
				return w.restore(w.loser)
			},
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stClientTransferProhibited},
			events: map[role][]registryv1.Event_Type{losingAgent: {evDeleted, evRestored}},
			told:   []role{losingAgent},
			check: func(t *testing.T, w *transferWorld) {
				i := w.identifier(alice)
				if i.ClaimsEndpoint != w.before.ClaimsEndpoint || i.AgentId != w.before.AgentId || !i.CreateTime.AsTime().Equal(w.before.CreateTime.AsTime()) ||
					i.DeleteTime != nil || i.PurgeTime != nil {
					t.Errorf("restored %v, want as before the delete: %v", i, w.before)
				}
				if id := w.identityOf(alice).ID; id != w.identityID {
					t.Errorf("identity %s after the restore, want %s", id, w.identityID)
				}
				res, err := w.resolver.ResolveIdentifier(as(w.admin), &registryv1.ResolveIdentifierRequest{Identifier: alice})
				if err != nil || res.ClaimsEndpoint != w.before.ClaimsEndpoint {
					t.Errorf("ResolveIdentifier after restore = %v, %v", res, err)
				}
			},
		},
		{
			name: "restore refused when not deleted", act: func(w *transferWorld) error { return w.restore(w.loser) },
			code: codes.FailedPrecondition, reason: "IDENTIFIER_NOT_PENDING_DELETE",
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stOK},
		},
		{
			name: "restore refused to another agent", act: func(w *transferWorld) error {
				w.deleteIdentifier(w.loser, alice)
				return w.restore(w.other)
			},
			code: codes.NotFound, reason: "IDENTIFIER_NOT_FOUND",
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stPendingDelete},
			events: map[role][]registryv1.Event_Type{losingAgent: {evDeleted}},
		},
		{
			name: "restore refused at the purge time", act: func(w *transferWorld) error {
				w.setClock(w.deleteIdentifier(w.loser, alice).PurgeTime.AsTime())
				return w.restore(w.loser)
			},
			code: codes.FailedPrecondition, reason: "REDEMPTION_PERIOD_OVER",
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stPendingDelete},
			events: map[role][]registryv1.Event_Type{losingAgent: {evDeleted}},
		},
		{
			name: "clientDeleteProhibited refuses delete", act: func(w *transferWorld) error {
				w.update(w.loser, alice, "", stClientDeleteProhibited)
				return w.remove(w.loser)
			},
			code: codes.FailedPrecondition, reason: "IDENTIFIER_DELETE_PROHIBITED",
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stClientDeleteProhibited},
		},
		{
			name: "serverDeleteProhibited refuses delete", act: func(w *transferWorld) error {
				w.serverStatus(alice, "court order", stServerDeleteProhibited)
				return w.remove(w.loser)
			},
			code: codes.FailedPrecondition, reason: "IDENTIFIER_DELETE_PROHIBITED",
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stServerDeleteProhibited},
			events: map[role][]registryv1.Event_Type{losingAgent: {evServerStatus}},
		},
		{
			name: "purge at the end of the redemption period", act: func(w *transferWorld) error {
				purge := w.deleteIdentifier(w.loser, alice).PurgeTime.AsTime()
				w.setClock(purge.Add(-time.Second))
				if n := w.sweepPurges(); n != 0 {
					w.t.Fatalf("a second before the purge time the sweep purged %d, want 0", n)
				}
				w.setClock(purge)
				if n := w.sweepPurges(); n != 1 {
					w.t.Fatalf("at the purge time the sweep purged %d, want 1", n)
				}
				return nil
			},
			sponsor: nobody,
			events:  map[role][]registryv1.Event_Type{losingAgent: {evDeleted, evPurged}},
			check: func(t *testing.T, w *transferWorld) {
				_, err := w.registry.GetIdentifier(w.loser.ctx(), &registryv1.GetIdentifierRequest{Identifier: alice})
				wantStatus(t, err, codes.NotFound, "IDENTIFIER_NOT_FOUND")
				wantStatus(t, w.resolve(), codes.NotFound, "IDENTIFIER_NOT_FOUND")
				wantStatus(t, w.restore(w.loser), codes.NotFound, "IDENTIFIER_NOT_FOUND")
				if i := w.register(w.gainer, alice); i.AgentId != w.gainer.agent.Id {
					t.Errorf("registered again to %s, want the gaining agent", i.AgentId)
				}
			},
		},

		// Server statuses.
		{
			name: "serverHold stops resolution", act: func(w *transferWorld) error { return w.setServerStatus(stServerHold) },
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stServerHold},
			events: map[role][]registryv1.Event_Type{losingAgent: {evServerStatus}},
			told:   []role{losingAgent},
			check: func(t *testing.T, w *transferWorld) {
				wantStatus(t, w.resolve(), codes.NotFound, "NOT_RESOLVED_ON_HOLD")
				ev := w.events(w.loser)[0]
				if ev.Reason != "test" || !sameStatuses(ev.PreviousStatuses, []registryv1.IdentifierStatus{stOK}) {
					t.Errorf("server status event %v, want the reason and the statuses before", ev)
				}
				j := w.journal()
				last := j[len(j)-1]
				var after struct {
					Reason string `json:"reason"`
				}
				if last.Action != "identifier.server_status" || json.Unmarshal([]byte(last.After), &after) != nil || after.Reason != "test" || last.Before == "" {
					t.Errorf("last journal entry %v, want the server status change with its reason", last)
				}
				if _, err := w.registry.GetIdentifier(w.loser.ctx(), &registryv1.GetIdentifierRequest{Identifier: alice}); err != nil {
					t.Errorf("the sponsor cannot read its identifier on hold: %v", err)
				}
			},
		},
		{
			name: "clearing serverHold resumes resolution", act: func(w *transferWorld) error {
				w.serverStatus(alice, "abuse", stServerHold)
				return w.setServerStatus()
			},
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stOK},
			events: map[role][]registryv1.Event_Type{losingAgent: {evServerStatus, evServerStatus}},
			told:   []role{losingAgent},
			check: func(t *testing.T, w *transferWorld) {
				if err := w.resolve(); err != nil {
					t.Errorf("ResolveIdentifier after the hold = %v", err)
				}
				ev := w.events(w.loser)[1]
				if !sameStatuses(ev.PreviousStatuses, []registryv1.IdentifierStatus{stServerHold}) {
					t.Errorf("second event's previous statuses %v, want the hold", ev.PreviousStatuses)
				}
				if n := countActions(w.journal(), "identifier.server_status"); n != 2 {
					t.Errorf("%d server status changes journaled, want 2", n)
				}
			},
		},
		{
			name: "serverUpdateProhibited refuses updates", act: func(w *transferWorld) error {
				w.serverStatus(alice, "dispute", stServerUpdateProhibited)
				return w.setClaimsEndpoint(w.loser, "https://claims.loser.agent.test/alice")
			},
			code: codes.FailedPrecondition, reason: "IDENTIFIER_UPDATE_PROHIBITED",
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stServerUpdateProhibited},
			events: map[role][]registryv1.Event_Type{losingAgent: {evServerStatus}},
		},
		{
			name: "client statuses are not the operator's", act: func(w *transferWorld) error {
				return w.setServerStatus(stServerHold, stClientTransferProhibited)
			},
			code: codes.InvalidArgument, reason: "STATUS_NOT_SERVER_SETTABLE",
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stOK},
			check: func(t *testing.T, w *transferWorld) {
				wantStatus(t, w.setServerStatus(stPendingDelete), codes.InvalidArgument, "STATUS_NOT_SERVER_SETTABLE")
				if n := countActions(w.journal(), "identifier.server_status"); n != 0 {
					t.Errorf("%d server status changes journaled, want 0", n)
				}
			},
		},
		{
			name: "the statuses in force change nothing", act: func(w *transferWorld) error {
				w.serverStatus(alice, "abuse", stServerHold)
				return w.setServerStatus(stServerHold)
			},
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stServerHold},
			events: map[role][]registryv1.Event_Type{losingAgent: {evServerStatus}},
			check: func(t *testing.T, w *transferWorld) {
				if n := countActions(w.journal(), "identifier.server_status"); n != 1 {
					t.Errorf("%d server status changes journaled, want 1", n)
				}
			},
		},
		{
			name: "server statuses leave client and lifecycle statuses alone", pending: true, act: func(w *transferWorld) error {
				w.update(w.loser, alice, "", stClientDeleteProhibited)
				w.mustRequest()
				w.serverStatus(alice, "abuse", stServerHold, stServerUpdateProhibited)
				return w.setServerStatus(stServerUpdateProhibited)
			},
			sponsor: losingAgent, statuses: []registryv1.IdentifierStatus{stClientDeleteProhibited, stPendingTransfer, stServerUpdateProhibited},
			transfer: registryv1.Transfer_STATUS_PENDING,
			events:   map[role][]registryv1.Event_Type{losingAgent: {evRequested, evServerStatus, evServerStatus}},
			told:     []role{losingAgent},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var pending time.Duration
			if tc.pending {
				pending = transferPendingPeriod
			}
			w := newTransferWorld(t, pending)
			err := tc.act(w)
			if tc.code == codes.OK {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
			} else {
				wantStatus(t, err, tc.code, tc.reason)
			}
			w.wantIdentifier(t, tc.sponsor, tc.statuses)
			w.wantTransfer(t, tc.transfer)
			for _, r := range []role{losingAgent, gainingAgent, thirdAgent} {
				wantEvents(t, r.String(), w.events(w.agent(r)), tc.events[r]...)
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
func (w *transferWorld) wantIdentifier(t *testing.T, sponsor role, statuses []registryv1.IdentifierStatus) {
	t.Helper()
	i := w.identifier(alice)
	switch {
	case sponsor == nobody && i != nil:
		t.Fatalf("alice.example.test is sponsored by %s, want it gone", i.AgentId)
	case sponsor == nobody:
		return
	case i == nil:
		t.Fatalf("alice.example.test is gone, want it sponsored by %v", sponsor)
	case i.AgentId != w.agent(sponsor).agent.Id:
		t.Fatalf("alice.example.test is sponsored by %s, want %v (%s)", i.AgentId, sponsor, w.agent(sponsor).agent.Id)
	}
	wantStatuses(t, alice, i.Statuses, statuses...)
}

// wantTransfer checks that the gaining agent's transfer, if any, has status want and is the
// only transfer the losing agent has.
func (w *transferWorld) wantTransfer(t *testing.T, want registryv1.Transfer_Status) {
	t.Helper()
	list, err := w.registry.ListTransfers(w.loser.ctx(), &registryv1.ListTransfersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if want == registryv1.Transfer_STATUS_UNSPECIFIED {
		if len(list.Transfers) != 0 {
			t.Fatalf("the losing agent has transfers %v, want none", list.Transfers)
		}
		return
	}
	if w.transfer == nil {
		t.Fatalf("no transfer was requested, want one %v", want)
	}
	if len(list.Transfers) != 1 || list.Transfers[0].Id != w.transfer.Id {
		t.Fatalf("the losing agent has transfers %v, want only %s", list.Transfers, w.transfer.Id)
	}
	for _, a := range []testAgent{w.loser, w.gainer} {
		if got := w.getTransfer(a, w.transfer.Id); got.Status != want {
			t.Fatalf("transfer is %v to %s, want %v", got.Status, a.agent.DisplayName, want)
		}
	}
}

// transferStatusesOf are the statuses the transfer of an event of each type can have: the
// transfer as it was after the change the event tells of.
var transferStatusesOf = map[registryv1.Event_Type][]registryv1.Transfer_Status{
	evRequested:    {registryv1.Transfer_STATUS_PENDING},
	evApproved:     {registryv1.Transfer_STATUS_CLIENT_APPROVED, registryv1.Transfer_STATUS_SERVER_APPROVED},
	evRejected:     {registryv1.Transfer_STATUS_CLIENT_REJECTED},
	evCancelled:    {registryv1.Transfer_STATUS_CLIENT_CANCELLED, registryv1.Transfer_STATUS_SERVER_CANCELLED},
	evCompletedIn:  {registryv1.Transfer_STATUS_CLIENT_APPROVED, registryv1.Transfer_STATUS_SERVER_APPROVED},
	evCompletedOut: {registryv1.Transfer_STATUS_CLIENT_APPROVED, registryv1.Transfer_STATUS_SERVER_APPROVED},
}

// wantEventsConsistent checks that each agent's events are numbered 1, 2, 3, ..., and that
// a transfer event carries the transfer, in a status that fits the event.
func (w *transferWorld) wantEventsConsistent(t *testing.T) {
	t.Helper()
	for _, a := range []testAgent{w.loser, w.gainer, w.other} {
		evs := w.events(a)
		for k, ev := range evs {
			if ev.Id != int64(k+1) {
				t.Fatalf("%s's events are numbered %v, want 1, 2, 3, ...", a.agent.DisplayName, eventIDs(evs))
			}
			if want, ok := transferStatusesOf[ev.Type]; ok && (ev.Transfer.GetId() != w.transfer.GetId() || !slices.Contains(want, ev.Transfer.GetStatus())) {
				t.Fatalf("%s's event %v carries transfer %v, want %s in one of %v", a.agent.DisplayName, ev.Type, ev.Transfer, w.transfer.GetId(), want)
			}
		}
	}
}

// wantTold checks that the last event of agent r tells the identifier's statuses as they are
// now, after the change it tells of.
func (w *transferWorld) wantTold(t *testing.T, r role) {
	t.Helper()
	evs := w.events(w.agent(r))
	if len(evs) == 0 {
		t.Fatalf("%v has no events", r)
	}
	last := evs[len(evs)-1]
	if i := w.identifier(alice); !sameStatuses(last.Statuses, i.Statuses) {
		t.Fatalf("%v's last event %v tells statuses %v, want those after the change: %v", r, last.Type, last.Statuses, i.Statuses)
	}
}

func eventIDs(evs []*registryv1.Event) []int64 {
	out := make([]int64, len(evs))
	for k, ev := range evs {
		out[k] = ev.Id
	}
	return out
}

func countActions(entries []*registryv1.JournalEntry, action string) int {
	n := 0
	for _, en := range entries {
		if en.Action == action {
			n++
		}
	}
	return n
}

// A transfer changes the sponsor, not the holder: the identity, and so the subject relying
// parties know the holder by, stays, whether the transfer completes at once or after the
// losing agent's approval.
func TestTransferKeepsIdentity(t *testing.T) {
	for _, pending := range []time.Duration{0, transferPendingPeriod} {
		t.Run("pending "+pending.String(), func(t *testing.T) {
			w := newTransferWorld(t, pending)
			before := w.identityOf(alice)
			w.mustRequest()
			if pending > 0 {
				if err := w.approve(w.loser); err != nil {
					t.Fatal(err)
				}
			}
			if i := w.identifier(alice); i.AgentId != w.gainer.agent.Id {
				t.Fatalf("alice.example.test is sponsored by %s, want the gaining agent", i.AgentId)
			}
			after := w.identityOf(alice)
			if after.ID != before.ID || after.SubjectSeed != before.SubjectSeed || !after.RetireTime.IsZero() {
				t.Fatalf("identity after the transfer %+v, want %+v unchanged", after, before)
			}
		})
	}
}

// A purge retires the identity for good; registering the name again makes a new one, with a
// new subject seed.
func TestPurgeRetiresIdentity(t *testing.T) {
	w := newTransferWorld(t, 0)
	old := w.identityOf(alice)
	del := w.deleteIdentifier(w.loser, alice)
	if again := w.identityOf(alice); again.ID != old.ID || !again.RetireTime.IsZero() {
		t.Fatalf("identity during the redemption period %+v, want %+v in use", again, old)
	}
	w.setClock(del.PurgeTime.AsTime())
	if n := w.sweepPurges(); n != 1 {
		t.Fatalf("SweepPurges purged %d, want 1", n)
	}
	retired := w.identity(old.ID)
	if !retired.RetireTime.Equal(del.PurgeTime.AsTime()) {
		t.Fatalf("identity retired at %v, want at the purge, %v", retired.RetireTime, del.PurgeTime.AsTime())
	}
	w.register(w.loser, alice)
	fresh := w.identityOf(alice)
	if fresh.ID == old.ID || fresh.SubjectSeed == old.SubjectSeed || !fresh.RetireTime.IsZero() {
		t.Fatalf("identity after registering again %+v, want a new one (the old was %+v)", fresh, old)
	}
	if still := w.identity(old.ID); still.RetireTime.IsZero() {
		t.Fatalf("the old identity came back into use: %+v", still)
	}
}

// An agent's events queue up oldest first, page by page, until it acknowledges them;
// acknowledging again changes nothing.
func TestLifecycleEventQueue(t *testing.T) {
	w := newTransferWorld(t, transferPendingPeriod)
	w.mustRequest()
	if err := w.reject(w.loser); err != nil {
		t.Fatal(err)
	}
	w.mustRequest()
	if err := w.approve(w.loser); err != nil {
		t.Fatal(err)
	}
	w.serverStatus(alice, "abuse", stServerHold)
	// The gaining agent: rejected, approved, completed in, server status changed.
	var got []*registryv1.Event
	token := ""
	for pages := 1; ; pages++ {
		resp, err := w.registry.ListEvents(w.gainer.ctx(), &registryv1.ListEventsRequest{PageSize: 3, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, resp.Events...)
		if token = resp.NextPageToken; token == "" {
			if pages != 2 {
				t.Fatalf("%d pages of 3 for 4 events, want 2", pages)
			}
			break
		}
	}
	wantEvents(t, "the gaining agent", got, evRejected, evApproved, evCompletedIn, evServerStatus)
	for k, ev := range got {
		if ev.Id != int64(k+1) || ev.CreateTime == nil || ev.AckTime != nil {
			t.Fatalf("event %d = %v, want number %d, a time, not acknowledged", k, ev, k+1)
		}
	}

	ack := func(a testAgent, ids ...int64) int32 {
		t.Helper()
		resp, err := w.registry.AckEvents(a.ctx(), &registryv1.AckEventsRequest{EventIds: ids})
		if err != nil {
			t.Fatalf("AckEvents(%v): %v", ids, err)
		}
		return resp.AcknowledgedCount
	}
	if n := ack(w.gainer, 1, 3); n != 2 {
		t.Fatalf("acknowledged %d of [1 3], want 2", n)
	}
	if n := ack(w.gainer, 1, 3); n != 0 {
		t.Fatalf("acknowledging [1 3] again counted %d, want 0", n)
	}
	wantEvents(t, "the gaining agent", w.events(w.gainer), evApproved, evServerStatus)
	if ids := eventIDs(w.events(w.gainer)); !slices.Equal(ids, []int64{2, 4}) {
		t.Fatalf("unacknowledged events %v, want [2 4]", ids)
	}
	// The losing agent's queue is its own: its numbers, untouched by the gainer's acks.
	wantEvents(t, "the losing agent", w.events(w.loser), evRequested, evRequested, evCompletedOut)
	if n := ack(w.gainer, 2, 4, 5); n != 2 {
		t.Fatalf("acknowledged %d of [2 4 5], want 2 (5 is not the gainer's)", n)
	}
	if evs := w.events(w.gainer); len(evs) != 0 {
		t.Fatalf("events left after acknowledging all: %v", eventIDs(evs))
	}
	_, err := w.registry.AckEvents(w.gainer.ctx(), &registryv1.AckEventsRequest{EventIds: []int64{0}})
	wantStatus(t, err, codes.InvalidArgument, "INVALID_EVENT_ID")

	// Acknowledged events are deleted once older than the retention (30 days by default);
	// unacknowledged ones stay however old, and numbering goes on.
	stored := func(a testAgent) []int64 {
		t.Helper()
		evs, err := w.store.ListEvents(t.Context(), a.agent.Id, 0, false, 100)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, e := range evs {
			ids = append(ids, e.ID)
		}
		return ids
	}
	if n, err := w.svc.SweepEvents(t.Context()); err != nil || n != 0 {
		t.Fatalf("SweepEvents before the retention ended: %d, %v; want 0", n, err)
	}
	w.clock.Advance(31 * 24 * time.Hour)
	if n, err := w.svc.SweepEvents(t.Context()); err != nil || n != 4 {
		t.Fatalf("SweepEvents after the retention: %d, %v; want the gainer's 4", n, err)
	}
	if ids := stored(w.gainer); len(ids) != 0 {
		t.Fatalf("gainer's events left: %v, want none", ids)
	}
	if ids := stored(w.loser); !slices.Equal(ids, []int64{1, 2, 3}) {
		t.Fatalf("loser's unacknowledged events left: %v, want [1 2 3]", ids)
	}
	w.serverStatus(alice, "abuse handled")
	if ids := eventIDs(w.events(w.gainer)); !slices.Equal(ids, []int64{5}) {
		t.Fatalf("gainer's next event: %v, want [5]", ids)
	}
}

// ListTransfers shows an agent the transfers it gains or loses by, in or out, all or only
// those pending, oldest first, page by page.
func TestListTransfers(t *testing.T) {
	e := newEnv(t, lifecycleOptions(transferPendingPeriod))
	a, b := e.newAgent("alpha"), e.newAgent("beta")
	for _, n := range []string{"a1", "a2", "a3"} {
		e.register(a, n+".example.test")
	}
	e.register(b, "b1.example.test")
	// The clock moves between requests, as a real one would: ids sort by request time.
	var out []*registryv1.Transfer
	for _, n := range []string{"a1", "a2", "a3"} {
		out = append(out, e.requestTransfer(b, n+".example.test"))
		e.clock.Advance(time.Second)
	}
	in := e.requestTransfer(a, "b1.example.test")
	if _, err := e.registry.RejectTransfer(a.ctx(), &registryv1.RejectTransferRequest{Id: out[0].Id}); err != nil {
		t.Fatal(err)
	}

	ids := func(ts ...*registryv1.Transfer) []string {
		var out []string
		for _, tr := range ts {
			out = append(out, tr.Id)
		}
		return out
	}
	list := func(dir registryv1.ListTransfersRequest_Direction, pendingOnly bool) []string {
		t.Helper()
		var got []*registryv1.Transfer
		token := ""
		for {
			resp, err := e.registry.ListTransfers(a.ctx(), &registryv1.ListTransfersRequest{Direction: dir, PendingOnly: pendingOnly, PageSize: 1, PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Transfers) > 1 {
				t.Fatalf("page of %d transfers, want at most 1", len(resp.Transfers))
			}
			got = append(got, resp.Transfers...)
			if token = resp.NextPageToken; token == "" {
				return ids(got...)
			}
		}
	}
	tests := []struct {
		name        string
		dir         registryv1.ListTransfersRequest_Direction
		pendingOnly bool
		want        []string
	}{
		{"both", registryv1.ListTransfersRequest_DIRECTION_UNSPECIFIED, false, ids(out[0], out[1], out[2], in)},
		{"out", registryv1.ListTransfersRequest_DIRECTION_OUT, false, ids(out...)},
		{"out pending", registryv1.ListTransfersRequest_DIRECTION_OUT, true, ids(out[1], out[2])},
		{"in", registryv1.ListTransfersRequest_DIRECTION_IN, false, ids(in)},
		{"in pending", registryv1.ListTransfersRequest_DIRECTION_IN, true, ids(in)},
		{"both pending", registryv1.ListTransfersRequest_DIRECTION_UNSPECIFIED, true, ids(out[1], out[2], in)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := list(tt.dir, tt.pendingOnly); !slices.Equal(got, tt.want) {
				t.Fatalf("listed %v, want %v", got, tt.want)
			}
		})
	}

	// A page token belongs to its listing.
	first, err := e.registry.ListTransfers(a.ctx(), &registryv1.ListTransfersRequest{Direction: registryv1.ListTransfersRequest_DIRECTION_OUT, PageSize: 1})
	if err != nil || first.NextPageToken == "" {
		t.Fatalf("first page = %v, %v", first, err)
	}
	_, err = e.registry.ListTransfers(a.ctx(), &registryv1.ListTransfersRequest{Direction: registryv1.ListTransfersRequest_DIRECTION_IN, PageToken: first.NextPageToken})
	wantStatus(t, err, codes.InvalidArgument, "INVALID_PAGE_TOKEN")
	_, err = e.registry.ListTransfers(a.ctx(), &registryv1.ListTransfersRequest{Direction: 7})
	wantStatus(t, err, codes.InvalidArgument, "DIRECTION_UNKNOWN")
}

// Challenges are kept for a while after they expire, so that an agent can read why one
// failed, and deleted after that; transfers made with them keep naming them.
func TestLifecycleSweepChallenges(t *testing.T) {
	w := newTransferWorld(t, 0)
	ctx := context.Background()
	unused, err := w.registry.CreateChallenge(w.gainer.ctx(), &registryv1.CreateChallengeRequest{Identifier: "bob.example.test", Purpose: registryv1.Purpose_PURPOSE_REGISTER})
	if err != nil {
		t.Fatal(err)
	}
	w.mustRequest()
	const retention = 24 * time.Hour // the registry's default
	w.setClock(unused.ExpireTime.AsTime().Add(retention))
	if n, err := w.svc.SweepChallenges(ctx); err != nil || n != 0 {
		t.Fatalf("SweepChallenges at expiry + retention = %d, %v; want 0", n, err)
	}
	if st := w.challengeStatus(unused.Id); st != registryv1.Challenge_STATUS_EXPIRED {
		t.Fatalf("expired challenge reads %v, want EXPIRED", st)
	}
	w.clock.Advance(time.Second)
	// The register challenges of the setup, the unused one and the transfer challenge.
	if n, err := w.svc.SweepChallenges(ctx); err != nil || n != 3 {
		t.Fatalf("SweepChallenges after expiry + retention = %d, %v; want 3", n, err)
	}
	for _, id := range []string{unused.Id, w.transfer.ChallengeId} {
		_, err := w.registry.GetChallenge(w.gainer.ctx(), &registryv1.GetChallengeRequest{Id: id})
		wantStatus(t, err, codes.NotFound, "CHALLENGE_NOT_FOUND")
	}
	if tr := w.getTransfer(w.gainer, w.transfer.Id); tr.ChallengeId != w.transfer.ChallengeId {
		t.Fatalf("transfer names challenge %q after the sweep, want %q", tr.ChallengeId, w.transfer.ChallengeId)
	}
}
