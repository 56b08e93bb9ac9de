package server_test

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

// Transfers through the RegistryService. Their rules (who may do what, when, and what each
// agent is told) are tested in registry/; here, how they look on the wire.

// TestTransferOnTheWire: a pending transfer as each party reads it, its ends in each status,
// and a refusal of each kind a party can meet.
func TestTransferOnTheWire(t *testing.T) {
	e := newEnv(t, lifecycleOptions(transferPendingPeriod))
	loser, gainer, other := e.newAgent("loser"), e.newAgent("gainer"), e.newAgent("other")
	for _, n := range []string{"a1", "a2", "a3", "a4"} {
		e.register(loser, n+".example.test")
	}
	c := e.transferChallenge(gainer, "a1.example.test")
	if c.Purpose != registryv1.Purpose_PURPOSE_TRANSFER {
		t.Fatalf("transfer challenge %v", c)
	}
	tr, err := e.registry.RequestTransfer(gainer.ctx(), &registryv1.RequestTransferRequest{ChallengeId: c.Id})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Id == "" || tr.Identifier != "a1.example.test" || tr.GainingAgentId != gainer.agent.Id || tr.LosingAgentId != loser.agent.Id ||
		tr.ChallengeId != c.Id || tr.Status != registryv1.Transfer_STATUS_PENDING ||
		!tr.ActTime.AsTime().Equal(tr.RequestTime.AsTime().Add(transferPendingPeriod)) {
		t.Fatalf("requested %v", tr)
	}
	if got := e.getTransfer(loser, tr.Id); !proto.Equal(got, tr) {
		t.Fatalf("the losing agent reads %v, want %v", got, tr)
	}
	wantStatuses(t, "a1 while pending", e.identifier("a1.example.test").Statuses, stPendingTransfer)
	ev := e.eventsAbout(loser, "a1.example.test")
	if len(ev) != 1 || ev[0].Type != evRequested || !proto.Equal(ev[0].Transfer, tr) || !slices.Equal(ev[0].Statuses, []registryv1.IdentifierStatus{stPendingTransfer}) {
		t.Fatalf("the losing agent is told %v", ev)
	}

	_, err = e.registry.ApproveTransfer(gainer.ctx(), &registryv1.ApproveTransferRequest{Id: tr.Id})
	wantStatus(t, err, codes.PermissionDenied, "LOSING_AGENT_ONLY")
	_, err = e.registry.CancelTransfer(other.ctx(), &registryv1.CancelTransferRequest{Id: tr.Id})
	wantStatus(t, err, codes.NotFound, "TRANSFER_NOT_FOUND")
	approved, err := e.registry.ApproveTransfer(loser.ctx(), &registryv1.ApproveTransferRequest{Id: tr.Id})
	if err != nil || approved.Status != registryv1.Transfer_STATUS_CLIENT_APPROVED || !approved.ActTime.AsTime().Equal(e.clock.Now().Truncate(time.Microsecond)) {
		t.Fatalf("ApproveTransfer = %v, %v", approved, err)
	}
	_, err = e.registry.RejectTransfer(loser.ctx(), &registryv1.RejectTransferRequest{Id: tr.Id})
	wantStatus(t, err, codes.FailedPrecondition, "TRANSFER_NOT_PENDING")
	wantEvents(t, "the gaining agent", e.eventsAbout(gainer, "a1.example.test"), evApproved, evCompletedIn)
	wantEvents(t, "the losing agent", e.eventsAbout(loser, "a1.example.test"), evRequested, evCompletedOut)
	if i := e.identifier("a1.example.test"); i.AgentId != gainer.agent.Id || !slices.Equal(i.Statuses, []registryv1.IdentifierStatus{stOK}) {
		t.Fatalf("a1 after the approval: %v", i)
	}

	end := func(name string, act func(id string) (*registryv1.Transfer, error), want registryv1.Transfer_Status) *registryv1.Transfer {
		t.Helper()
		tr := e.requestTransfer(gainer, name)
		got, err := act(tr.Id)
		if err != nil || got.Status != want {
			t.Fatalf("ending the transfer of %s = %v, %v; want %v", name, got, err, want)
		}
		return tr
	}
	e.clock.Advance(time.Second)
	rejected := end("a2.example.test", func(id string) (*registryv1.Transfer, error) {
		return e.registry.RejectTransfer(loser.ctx(), &registryv1.RejectTransferRequest{Id: id})
	}, registryv1.Transfer_STATUS_CLIENT_REJECTED)
	e.clock.Advance(time.Second)
	cancelled := end("a3.example.test", func(id string) (*registryv1.Transfer, error) {
		return e.registry.CancelTransfer(gainer.ctx(), &registryv1.CancelTransferRequest{Id: id})
	}, registryv1.Transfer_STATUS_CLIENT_CANCELLED)
	e.clock.Advance(time.Second)
	byDelete := e.requestTransfer(gainer, "a4.example.test")
	e.deleteIdentifier(loser, "a4.example.test")
	if got := e.getTransfer(gainer, byDelete.Id); got.Status != registryv1.Transfer_STATUS_SERVER_CANCELLED {
		t.Fatalf("the transfer of an identifier deleted is %v, want SERVER_CANCELLED", got.Status)
	}
	e.clock.Advance(time.Second)
	b1 := e.register(gainer, "b1.example.test").Name
	back := e.requestTransfer(loser, b1)
	e.setClock(back.ActTime.AsTime())
	if n := e.sweepTransfers(); n != 1 {
		t.Fatalf("the deadline sweep ended %d transfers, want 1", n)
	}
	if got := e.getTransfer(loser, back.Id); got.Status != registryv1.Transfer_STATUS_SERVER_APPROVED {
		t.Fatalf("a transfer past its deadline is %v, want SERVER_APPROVED", got.Status)
	}

	// Listings by direction, pending or not, a page at a time.
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
			resp, err := e.registry.ListTransfers(loser.ctx(), &registryv1.ListTransfersRequest{Direction: dir, PendingOnly: pendingOnly, PageSize: 1, PageToken: token})
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
	out := ids(tr, rejected, cancelled, byDelete)
	for _, tc := range []struct {
		dir         registryv1.ListTransfersRequest_Direction
		pendingOnly bool
		want        []string
	}{
		{registryv1.ListTransfersRequest_DIRECTION_UNSPECIFIED, false, append(slices.Clone(out), back.Id)},
		{registryv1.ListTransfersRequest_DIRECTION_OUT, false, out},
		{registryv1.ListTransfersRequest_DIRECTION_IN, false, ids(back)},
		{registryv1.ListTransfersRequest_DIRECTION_OUT, true, nil},
	} {
		if got := list(tc.dir, tc.pendingOnly); !slices.Equal(got, tc.want) {
			t.Fatalf("ListTransfers(%v, pending only %t) = %v, want %v", tc.dir, tc.pendingOnly, got, tc.want)
		}
	}
	_, err = e.registry.ListTransfers(loser.ctx(), &registryv1.ListTransfersRequest{Direction: 7})
	wantStatus(t, err, codes.InvalidArgument, "DIRECTION_UNKNOWN")
}

// TestTransferAtOnceOnTheWire: without a pending period a transfer answers completed.
func TestTransferAtOnceOnTheWire(t *testing.T) {
	e := newEnv(t, lifecycleOptions(0))
	loser, gainer := e.newAgent("loser"), e.newAgent("gainer")
	e.register(loser, "alice.example.test")
	tr := e.requestTransfer(gainer, "alice.example.test")
	if tr.Status != registryv1.Transfer_STATUS_SERVER_APPROVED || !tr.ActTime.AsTime().Equal(tr.RequestTime.AsTime()) {
		t.Fatalf("transfer %v, want it approved when requested", tr)
	}
	if i := e.identifier("alice.example.test"); i.AgentId != gainer.agent.Id {
		t.Fatalf("sponsored by %s after the transfer", i.AgentId)
	}
	wantEvents(t, "the gaining agent", e.events(gainer), evCompletedIn)
}
