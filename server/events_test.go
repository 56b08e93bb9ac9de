package server_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/id4me/id4me-registry/internal/testdb"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
	"github.com/id4me/id4me-registry/registry"
	"github.com/id4me/id4me-registry/sqlstore"
)

// watcher is an open WatchEvents stream whose messages and end arrive on channels.
type watcher struct {
	events chan *registryv1.Event
	end    chan error
	cancel context.CancelFunc
}

// watch opens a WatchEvents stream as agent a, after afterID.
func (e *env) watch(a testAgent, afterID int64) *watcher {
	e.t.Helper()
	ctx, cancel := context.WithCancel(a.ctx())
	e.t.Cleanup(cancel)
	stream, err := e.registry.WatchEvents(ctx, &registryv1.WatchEventsRequest{AfterId: afterID})
	if err != nil {
		e.t.Fatalf("WatchEvents: %v", err)
	}
	w := &watcher{events: make(chan *registryv1.Event, 100), end: make(chan error, 1), cancel: cancel}
	go readStream(stream, w)
	return w
}

func readStream(stream grpc.ServerStreamingClient[registryv1.Event], w *watcher) {
	for {
		ev, err := stream.Recv()
		if err != nil {
			w.end <- err
			return
		}
		w.events <- ev
	}
}

// next returns the stream's next event.
func (w *watcher) next(t *testing.T) *registryv1.Event {
	t.Helper()
	select {
	case ev := <-w.events:
		return ev
	case err := <-w.end:
		t.Fatalf("stream ended waiting for an event: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no event in 10s")
	}
	return nil
}

// ended returns how the stream ended, failing if an event comes first.
func (w *watcher) ended(t *testing.T) error {
	t.Helper()
	select {
	case ev := <-w.events:
		t.Fatalf("got event %v, want the stream to end", ev)
	case err := <-w.end:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("stream did not end in 10s")
	}
	return nil
}

// setServerStatus sets alice.example.test's server statuses as the operator.
func (e *env) setServerStatus(reason string, statuses ...registryv1.IdentifierStatus) *registryv1.Identifier {
	e.t.Helper()
	i, err := e.adminAPI.SetServerStatus(as(e.admin), &registryv1.SetServerStatusRequest{Identifier: "alice.example.test", Statuses: statuses, Reason: reason})
	if err != nil {
		e.t.Fatalf("SetServerStatus(%v): %v", statuses, err)
	}
	return i
}

const (
	statusOK   = registryv1.IdentifierStatus_IDENTIFIER_STATUS_OK
	serverHold = registryv1.IdentifierStatus_IDENTIFIER_STATUS_SERVER_HOLD
)

func wantIDs(t *testing.T, evs []*registryv1.Event, ids ...int64) {
	t.Helper()
	var got []int64
	for _, ev := range evs {
		got = append(got, ev.Id)
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("event ids %v, want %v", got, ids)
	}
}

// The poll interval is an hour here: only this instance's signal can wake a stream in time.
func TestWatchEvents(t *testing.T) {
	e := newEnv(t, envOptions{EventPollInterval: time.Hour})
	a, b := e.newAgent("alpha"), e.newAgent("beta")
	e.register(a, "alice.example.test")
	w := e.watch(a, 0)
	other := e.watch(b, 0)

	e.setServerStatus("abuse report", serverHold)
	ev := w.next(t)
	if ev.Id != 1 || ev.Type != registryv1.Event_TYPE_SERVER_STATUS_CHANGED || ev.Identifier != "alice.example.test" ||
		!slices.Equal(ev.Statuses, []registryv1.IdentifierStatus{serverHold}) ||
		!slices.Equal(ev.PreviousStatuses, []registryv1.IdentifierStatus{statusOK}) ||
		ev.Reason != "abuse report" || ev.CreateTime == nil || ev.AckTime != nil {
		t.Fatalf("first event = %v", ev)
	}
	e.setServerStatus("no change: no event", serverHold)
	e.setServerStatus("resolved")
	ev = w.next(t)
	if ev.Id != 2 || !slices.Equal(ev.Statuses, []registryv1.IdentifierStatus{statusOK}) ||
		!slices.Equal(ev.PreviousStatuses, []registryv1.IdentifierStatus{serverHold}) {
		t.Fatalf("second event = %v", ev)
	}

	// Unacknowledged events are listed, oldest first, until acknowledged.
	list, err := e.registry.ListEvents(a.ctx(), &registryv1.ListEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(t, list.Events, 1, 2)
	if ack, err := e.registry.AckEvents(a.ctx(), &registryv1.AckEventsRequest{EventIds: []int64{1}}); err != nil || ack.AcknowledgedCount != 1 {
		t.Fatalf("AckEvents([1]) = %v, %v", ack, err)
	}
	if ack, err := e.registry.AckEvents(a.ctx(), &registryv1.AckEventsRequest{EventIds: []int64{1, 2, 99}}); err != nil || ack.AcknowledgedCount != 1 {
		t.Fatalf("AckEvents([1 2 99]) = %v, %v; want only 2 counted", ack, err)
	}
	// Another agent's acknowledgements touch nothing of alpha's.
	if ack, err := e.registry.AckEvents(b.ctx(), &registryv1.AckEventsRequest{EventIds: []int64{1, 2}}); err != nil || ack.AcknowledgedCount != 0 {
		t.Fatalf("beta's AckEvents = %v, %v", ack, err)
	}
	list, err = e.registry.ListEvents(a.ctx(), &registryv1.ListEventsRequest{})
	if err != nil || len(list.Events) != 0 {
		t.Fatalf("ListEvents after acknowledging all = %v, %v", list, err)
	}

	// A client that reconnects after the last id it got receives the rest, acknowledged or
	// not; one that starts from 0 begins with the oldest unacknowledged event.
	resumed := e.watch(a, 1)
	if ev := resumed.next(t); ev.Id != 2 || ev.AckTime == nil {
		t.Fatalf("resumed after 1: %v, want event 2, acknowledged", ev)
	}
	fresh := e.watch(a, 0)
	e.setServerStatus("again", serverHold)
	for name, w := range map[string]*watcher{"first": w, "resumed": resumed, "fresh": fresh} {
		if ev := w.next(t); ev.Id != 3 {
			t.Fatalf("%s stream got event %d, want 3", name, ev.Id)
		}
	}
	select {
	case ev := <-other.events:
		t.Fatalf("beta was told of alpha's identifier: %v", ev)
	default:
	}

	// A server stream reports how it ended on Recv.
	stream, err := e.registry.WatchEvents(a.ctx(), &registryv1.WatchEventsRequest{AfterId: -1})
	if err == nil {
		_, err = stream.Recv()
	}
	wantStatus(t, err, codes.InvalidArgument, "INVALID_EVENT_ID")

	// The stream goes through the interceptors: its end is logged with the caller.
	w.cancel()
	w.ended(t)
	waitFor(t, func() bool {
		for _, line := range strings.Split(e.logs.String(), "\n") {
			if strings.Contains(line, `"grpc.method":"WatchEvents"`) && strings.Contains(line, `"actor":"agent:`+a.agent.Id) {
				return true
			}
		}
		return false
	})
}

// A backlog larger than one read of the store arrives whole and in order.
func TestWatchEventsBacklog(t *testing.T) {
	e := newEnv(t, envOptions{EventPollInterval: time.Hour})
	a := e.newAgent("alpha")
	e.register(a, "alice.example.test")
	operatorID, _, _ := strings.Cut(e.admin, ".")
	operator := registry.Actor{Kind: registry.ActorOperator, ID: operatorID, CredentialID: operatorID}
	const n = 1201
	for k := range n {
		var want []registry.Status
		if k%2 == 0 {
			want = []registry.Status{registry.StatusServerHold}
		}
		if _, err := e.svc.SetServerStatus(context.Background(), operator, "alice.example.test", want, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	w := e.watch(a, 0)
	for id := int64(1); id <= n; id++ {
		if ev := w.next(t); ev.Id != id {
			t.Fatalf("got event %d, want %d", ev.Id, id)
		}
	}
}

// Events committed by another instance sharing the database are not signalled here; the
// stream finds them by polling.
func TestWatchEventsSeesOtherInstances(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			e := newEnv(t, envOptions{DSN: func(testing.TB) string { return dsn }, EventPollInterval: 20 * time.Millisecond})
			a := e.newAgent("alpha")
			e.register(a, "alice.example.test")
			w := e.watch(a, 0)

			store, err := sqlstore.Open(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { store.Close() })
			elsewhere, err := registry.New(registry.Config{Store: store, Now: e.clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			operatorID, _, _ := strings.Cut(e.admin, ".")
			operator := registry.Actor{Kind: registry.ActorOperator, ID: operatorID, CredentialID: operatorID}
			if _, err := elsewhere.SetServerStatus(context.Background(), operator, "alice.example.test", []registry.Status{registry.StatusServerHold}, "from another instance", ""); err != nil {
				t.Fatal(err)
			}
			if ev := w.next(t); ev.Id != 1 || ev.Reason != "from another instance" {
				t.Fatalf("event = %v", ev)
			}
		})
	}
}

// A stream is checked against the credential that opened it, every poll interval: revoking
// the token or suspending the agent ends it as it would refuse the next call.
func TestWatchEventsEndsWhenAccessEnds(t *testing.T) {
	e := newEnv(t, envOptions{EventPollInterval: 20 * time.Millisecond})
	a := e.newAgent("alpha")
	w := e.watch(a, 0)
	tokenID, _, _ := strings.Cut(a.token, ".")
	if _, err := e.adminAPI.RevokeAgentToken(as(e.admin), &registryv1.RevokeAgentTokenRequest{AgentId: a.agent.Id, TokenId: tokenID}); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, w.ended(t), codes.Unauthenticated, "CREDENTIAL_REVOKED")

	b := e.newAgent("beta")
	w = e.watch(b, 0)
	b.agent.State = registryv1.Agent_STATE_SUSPENDED
	if _, err := e.adminAPI.UpdateAgent(as(e.admin), &registryv1.UpdateAgentRequest{Agent: b.agent, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"state"}}}); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, w.ended(t), codes.PermissionDenied, "AGENT_SUSPENDED")
}

// Shutdown ends open streams at once, telling their clients to reconnect, rather than
// waiting for them until its deadline.
func TestWatchEventsEndAtShutdown(t *testing.T) {
	e := newEnv(t, envOptions{EventPollInterval: time.Hour})
	a := e.newAgent("alpha")
	w := e.watch(a, 0)
	// The stream is open once the server has answered a call made after it on the same
	// connection; the stream's own first message is an event, and there is none.
	if _, err := e.registry.ListEvents(a.ctx(), &registryv1.ListEventsRequest{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e.srv.Shutdown(ctx)
	if ctx.Err() != nil {
		t.Fatal("Shutdown waited for the event stream until its deadline")
	}
	wantStatus(t, w.ended(t), codes.Unavailable, "SERVER_SHUTTING_DOWN")
}

// TestEventsOnTheWire: each kind of event as the Event message carries it; a page of events
// at a time; acknowledgements counted. Which change tells whom is tested in registry/.
func TestEventsOnTheWire(t *testing.T) {
	e := newEnv(t, lifecycleOptions(0))
	a := e.newAgent("alpha")
	e.register(a, "alice.example.test")
	e.setServerStatus("abuse report", serverHold)
	e.setServerStatus("resolved")
	del := e.deleteIdentifier(a, "alice.example.test")
	if _, err := e.registry.RestoreIdentifier(a.ctx(), &registryv1.RestoreIdentifierRequest{Identifier: "alice.example.test"}); err != nil {
		t.Fatal(err)
	}
	e.setClock(e.deleteIdentifier(a, "alice.example.test").PurgeTime.AsTime())
	if n := e.sweepPurges(); n != 1 {
		t.Fatalf("SweepPurges purged %d, want 1", n)
	}
	evs := e.events(a)
	wantEvents(t, "alpha", evs, evServerStatus, evServerStatus, evDeleted, evRestored, evDeleted, evPurged)
	for k, ev := range evs {
		if ev.Id != int64(k+1) || ev.Identifier != "alice.example.test" || ev.CreateTime == nil || ev.AckTime != nil || ev.Transfer != nil {
			t.Fatalf("event %d = %v", k+1, ev)
		}
	}
	held, cleared, deleted, restored, purged := evs[0], evs[1], evs[2], evs[3], evs[5]
	if !slices.Equal(held.Statuses, []registryv1.IdentifierStatus{serverHold}) || !slices.Equal(held.PreviousStatuses, []registryv1.IdentifierStatus{statusOK}) || held.Reason != "abuse report" {
		t.Fatalf("hold event = %v", held)
	}
	if !slices.Equal(cleared.Statuses, []registryv1.IdentifierStatus{statusOK}) || !slices.Equal(cleared.PreviousStatuses, []registryv1.IdentifierStatus{serverHold}) {
		t.Fatalf("release event = %v", cleared)
	}
	if !slices.Equal(deleted.Statuses, []registryv1.IdentifierStatus{stPendingDelete}) || !deleted.PurgeTime.AsTime().Equal(del.PurgeTime.AsTime()) || deleted.PreviousStatuses != nil {
		t.Fatalf("delete event = %v", deleted)
	}
	if !slices.Equal(restored.Statuses, []registryv1.IdentifierStatus{statusOK}) || restored.PurgeTime != nil {
		t.Fatalf("restore event = %v", restored)
	}
	if purged.Statuses != nil || purged.PurgeTime != nil {
		t.Fatalf("purge event = %v; the identifier is gone, with no statuses", purged)
	}

	page, err := e.registry.ListEvents(a.ctx(), &registryv1.ListEventsRequest{PageSize: 4})
	if err != nil || len(page.Events) != 4 || page.NextPageToken == "" {
		t.Fatalf("first page = %v, %v", page, err)
	}
	rest, err := e.registry.ListEvents(a.ctx(), &registryv1.ListEventsRequest{PageSize: 4, PageToken: page.NextPageToken})
	if err != nil || len(rest.Events) != 2 || rest.NextPageToken != "" {
		t.Fatalf("second page = %v, %v", rest, err)
	}
	ack, err := e.registry.AckEvents(a.ctx(), &registryv1.AckEventsRequest{EventIds: []int64{1, 2, 99}})
	if err != nil || ack.AcknowledgedCount != 2 {
		t.Fatalf("AckEvents([1 2 99]) = %v, %v; want 2 counted", ack, err)
	}
	wantIDs(t, e.events(a), 3, 4, 5, 6)
	_, err = e.registry.AckEvents(a.ctx(), &registryv1.AckEventsRequest{EventIds: []int64{0}})
	wantStatus(t, err, codes.InvalidArgument, "INVALID_EVENT_ID")
}

func TestSetServerStatusValidation(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := e.newAgent("alpha")
	e.register(a, "alice.example.test")
	for st, reason := range map[registryv1.IdentifierStatus]string{
		registryv1.IdentifierStatus_IDENTIFIER_STATUS_UNSPECIFIED: "STATUS_UNKNOWN",
		99:       "STATUS_UNKNOWN",
		statusOK: "STATUS_NOT_SERVER_SETTABLE",
		registryv1.IdentifierStatus_IDENTIFIER_STATUS_CLIENT_DELETE_PROHIBITED: "STATUS_NOT_SERVER_SETTABLE",
		registryv1.IdentifierStatus_IDENTIFIER_STATUS_PENDING_DELETE:           "STATUS_NOT_SERVER_SETTABLE",
	} {
		_, err := e.adminAPI.SetServerStatus(as(e.admin), &registryv1.SetServerStatusRequest{Identifier: "alice.example.test", Statuses: []registryv1.IdentifierStatus{serverHold, st}})
		wantStatus(t, err, codes.InvalidArgument, reason)
	}
	// Agents cannot call it.
	_, err := e.adminAPI.SetServerStatus(a.ctx(), &registryv1.SetServerStatusRequest{Identifier: "alice.example.test"})
	wantStatus(t, err, codes.PermissionDenied, "OPERATOR_CREDENTIAL_REQUIRED")
	got := e.setServerStatus("hold", serverHold)
	if !slices.Equal(got.Statuses, []registryv1.IdentifierStatus{serverHold}) {
		t.Fatalf("statuses after SetServerStatus = %v", got.Statuses)
	}
}

// A stream that names no event starts at the oldest unacknowledged one, and from there sends
// every event, acknowledged or not: an acknowledgement by another reader (a ListEvents poller,
// another stream) hides nothing from it. With every event acknowledged it sends what comes
// next.
func TestWatchEventsStartsAtOldestUnacknowledged(t *testing.T) {
	e := newEnv(t, envOptions{EventPollInterval: time.Hour})
	a := e.newAgent("alpha")
	e.register(a, "alice.example.test")
	e.setServerStatus("one", serverHold)
	e.setServerStatus("two")
	e.setServerStatus("three", serverHold)
	e.setServerStatus("four")
	if _, err := e.registry.AckEvents(a.ctx(), &registryv1.AckEventsRequest{EventIds: []int64{1, 2, 3}}); err != nil {
		t.Fatal(err)
	}
	if ev := e.watch(a, 0).next(t); ev.Id != 4 {
		t.Fatalf("stream from 0 began with event %d, want 4, the oldest unacknowledged", ev.Id)
	}
	e.setServerStatus("five", serverHold)
	e.setServerStatus("six")
	if _, err := e.registry.AckEvents(a.ctx(), &registryv1.AckEventsRequest{EventIds: []int64{4}}); err != nil {
		t.Fatal(err)
	}
	late := e.watch(a, 0)
	first := late.next(t)
	if _, err := e.registry.AckEvents(a.ctx(), &registryv1.AckEventsRequest{EventIds: []int64{5, 6}}); err != nil {
		t.Fatal(err)
	}
	if second := late.next(t); first.Id != 5 || second.Id != 6 {
		t.Fatalf("stream from 0 sent %d, %d; want 5, 6", first.Id, second.Id)
	}
	// Everything acknowledged: a stream from 0 sends only what comes next.
	quiet := e.watch(a, 0)
	e.setServerStatus("seven", serverHold)
	if ev := quiet.next(t); ev.Id != 7 {
		t.Fatalf("stream from 0 with all acknowledged began with %d, want 7", ev.Id)
	}
}
