package server_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/id4me/id4me-registry/internal/testdb"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
	"github.com/id4me/id4me-registry/registry"
)

// Helpers for the tests of the lifecycle on the wire (transfers, deletion and restoration,
// server statuses and the events they cause), shared with the other tests that need them.

// Identifier statuses, short.
const (
	stOK                       = registryv1.IdentifierStatus_IDENTIFIER_STATUS_OK
	stClientTransferProhibited = registryv1.IdentifierStatus_IDENTIFIER_STATUS_CLIENT_TRANSFER_PROHIBITED
	stClientDeleteProhibited   = registryv1.IdentifierStatus_IDENTIFIER_STATUS_CLIENT_DELETE_PROHIBITED
	stClientUpdateProhibited   = registryv1.IdentifierStatus_IDENTIFIER_STATUS_CLIENT_UPDATE_PROHIBITED
	stServerHold               = registryv1.IdentifierStatus_IDENTIFIER_STATUS_SERVER_HOLD
	stPendingDelete            = registryv1.IdentifierStatus_IDENTIFIER_STATUS_PENDING_DELETE
	stPendingTransfer          = registryv1.IdentifierStatus_IDENTIFIER_STATUS_PENDING_TRANSFER
)

// Event types, short.
const (
	evRequested    = registryv1.Event_TYPE_TRANSFER_REQUESTED
	evApproved     = registryv1.Event_TYPE_TRANSFER_APPROVED
	evCompletedIn  = registryv1.Event_TYPE_TRANSFER_COMPLETED_IN
	evCompletedOut = registryv1.Event_TYPE_TRANSFER_COMPLETED_OUT
	evDeleted      = registryv1.Event_TYPE_IDENTIFIER_DELETED
	evRestored     = registryv1.Event_TYPE_IDENTIFIER_RESTORED
	evPurged       = registryv1.Event_TYPE_IDENTIFIER_PURGED
	evServerStatus = registryv1.Event_TYPE_SERVER_STATUS_CHANGED
)

// The lifecycle periods of the test registries.
const (
	transferPendingPeriod = 5 * 24 * time.Hour
	redemptionPeriod      = 30 * 24 * time.Hour
)

// lifecycleOptions configures a registry whose transfers wait pending (0: they complete at
// once) and whose deleted identifiers can be restored for redemptionPeriod.
func lifecycleOptions(pending time.Duration) envOptions {
	return envOptions{Configure: func(c *registry.Config) {
		c.TransferPendingPeriod = pending
		c.RedemptionPeriod = redemptionPeriod
	}}
}

// transferChallenge creates a PURPOSE_TRANSFER challenge for identifier as agent a, publishes
// its record on both nameservers and verifies it.
func (e *env) transferChallenge(a testAgent, identifier string) *registryv1.Challenge {
	e.t.Helper()
	c, err := e.registry.CreateChallenge(a.ctx(), &registryv1.CreateChallengeRequest{Identifier: identifier, Purpose: registryv1.Purpose_PURPOSE_TRANSFER})
	if err != nil {
		e.t.Fatalf("CreateChallenge(%s, transfer): %v", identifier, err)
	}
	e.publish(c)
	v, err := e.registry.VerifyChallenge(a.ctx(), &registryv1.VerifyChallengeRequest{Id: c.Id})
	if err != nil {
		e.t.Fatalf("VerifyChallenge: %v", err)
	}
	if v.Status != registryv1.Challenge_STATUS_VALID {
		e.t.Fatalf("VerifyChallenge: status %v, problem %v", v.Status, v.Problem)
	}
	return v
}

// requestTransfer asks for identifier as the gaining agent a, with a new transfer challenge.
func (e *env) requestTransfer(a testAgent, identifier string) *registryv1.Transfer {
	e.t.Helper()
	c := e.transferChallenge(a, identifier)
	tr, err := e.registry.RequestTransfer(a.ctx(), &registryv1.RequestTransferRequest{ChallengeId: c.Id})
	if err != nil {
		e.t.Fatalf("RequestTransfer(%s): %v", identifier, err)
	}
	return tr
}

// identifier reads an identifier as the operator; nil when there is none.
func (e *env) identifier(name string) *registryv1.Identifier {
	e.t.Helper()
	i, err := e.adminAPI.GetIdentifier(as(e.admin), &registryv1.GetIdentifierRequest{Identifier: name})
	if status.Code(err) == codes.NotFound {
		return nil
	}
	if err != nil {
		e.t.Fatalf("GetIdentifier(%s): %v", name, err)
	}
	return i
}

// getTransfer reads a transfer as agent a, one of its parties.
func (e *env) getTransfer(a testAgent, id string) *registryv1.Transfer {
	e.t.Helper()
	tr, err := e.registry.GetTransfer(a.ctx(), &registryv1.GetTransferRequest{Id: id})
	if err != nil {
		e.t.Fatalf("GetTransfer(%s): %v", id, err)
	}
	return tr
}

// update changes identifier as its sponsor a: the claims endpoint override and the client
// statuses.
func (e *env) update(a testAgent, identifier, claimsEndpoint string, statuses ...registryv1.IdentifierStatus) *registryv1.Identifier {
	e.t.Helper()
	i, err := e.registry.UpdateIdentifier(a.ctx(), &registryv1.UpdateIdentifierRequest{
		Identifier: &registryv1.Identifier{Name: identifier, ClaimsEndpoint: claimsEndpoint, Statuses: statuses},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"claims_endpoint", "statuses"}},
	})
	if err != nil {
		e.t.Fatalf("UpdateIdentifier(%s): %v", identifier, err)
	}
	return i
}

// deleteIdentifier deletes identifier as its sponsor a.
func (e *env) deleteIdentifier(a testAgent, identifier string) *registryv1.Identifier {
	e.t.Helper()
	i, err := e.registry.DeleteIdentifier(a.ctx(), &registryv1.DeleteIdentifierRequest{Identifier: identifier})
	if err != nil {
		e.t.Fatalf("DeleteIdentifier(%s): %v", identifier, err)
	}
	return i
}

// serverStatus sets identifier's server statuses as the operator.
func (e *env) serverStatus(identifier, reason string, statuses ...registryv1.IdentifierStatus) *registryv1.Identifier {
	e.t.Helper()
	i, err := e.adminAPI.SetServerStatus(as(e.admin), &registryv1.SetServerStatusRequest{Identifier: identifier, Statuses: statuses, Reason: reason})
	if err != nil {
		e.t.Fatalf("SetServerStatus(%s, %v): %v", identifier, statuses, err)
	}
	return i
}

// events returns agent a's unacknowledged events, oldest first, reading every page.
func (e *env) events(a testAgent) []*registryv1.Event {
	e.t.Helper()
	var out []*registryv1.Event
	token := ""
	for {
		resp, err := e.registry.ListEvents(a.ctx(), &registryv1.ListEventsRequest{PageSize: 100, PageToken: token})
		if err != nil {
			e.t.Fatalf("ListEvents: %v", err)
		}
		out = append(out, resp.Events...)
		if token = resp.NextPageToken; token == "" {
			return out
		}
	}
}

// eventsAbout returns agent a's unacknowledged events about identifier, oldest first.
func (e *env) eventsAbout(a testAgent, identifier string) []*registryv1.Event {
	e.t.Helper()
	return slices.DeleteFunc(e.events(a), func(ev *registryv1.Event) bool { return ev.Identifier != identifier })
}

// identityOf returns the identity identifier is bound to, read from the store.
func (e *env) identityOf(identifier string) registry.Identity {
	e.t.Helper()
	ctx := context.Background()
	i, err := e.store.GetIdentifier(ctx, identifier)
	if err != nil {
		e.t.Fatalf("store: identifier %s: %v", identifier, err)
	}
	return e.identity(i.IdentityID)
}

// identity reads an identity from the store.
func (e *env) identity(id string) registry.Identity {
	e.t.Helper()
	identity, err := e.store.GetIdentity(context.Background(), id)
	if err != nil {
		e.t.Fatalf("store: identity %s: %v", id, err)
	}
	return identity
}

// sweepTransfers runs the transfer deadline sweep once and returns how many it ended.
func (e *env) sweepTransfers() int {
	e.t.Helper()
	n, err := e.svc.SweepTransfers(context.Background())
	if err != nil {
		e.t.Fatalf("SweepTransfers: %v", err)
	}
	return n
}

// sweepPurges runs the purge sweep once and returns how many identifiers it purged.
func (e *env) sweepPurges() int {
	e.t.Helper()
	n, err := e.svc.SweepPurges(context.Background())
	if err != nil {
		e.t.Fatalf("SweepPurges: %v", err)
	}
	return n
}

// setClock moves the registry's clock to at.
func (e *env) setClock(at time.Time) {
	e.clock.Advance(at.Sub(e.clock.Now()))
}

// eventTypes lists the types of evs, in order.
func eventTypes(evs []*registryv1.Event) []registryv1.Event_Type {
	out := make([]registryv1.Event_Type, len(evs))
	for k, ev := range evs {
		out[k] = ev.Type
	}
	return out
}

// wantEvents fails unless evs have the types want, in order.
func wantEvents(t *testing.T, who string, evs []*registryv1.Event, want ...registryv1.Event_Type) {
	t.Helper()
	if got := eventTypes(evs); !slices.Equal(got, want) {
		t.Fatalf("%s's events are %v, want %v", who, got, want)
	}
}

// sameStatuses reports whether got and want hold the same statuses, in any order.
func sameStatuses(got, want []registryv1.IdentifierStatus) bool {
	return slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want)))
}

// wantStatuses fails unless got holds exactly the statuses want, in any order.
func wantStatuses(t *testing.T, what string, got []registryv1.IdentifierStatus, want ...registryv1.IdentifierStatus) {
	t.Helper()
	if !sameStatuses(got, want) {
		t.Fatalf("%s: statuses %v, want %v", what, got, want)
	}
}

// raceRounds is how many times a test of a race runs it.
const raceRounds = 10

// forEachBackend runs test on SQLite and on PostgreSQL (skipped without its DSN).
func forEachBackend(t *testing.T, test func(t *testing.T, dsn func(testing.TB) string)) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) { test(t, b.DSN) })
	}
}
