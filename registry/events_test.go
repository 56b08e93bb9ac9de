package registry_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/registry"
)

// An agent's events: what each change tells whom, the queue an agent reads them from, their
// acknowledgement and their retention.

// TestEventsOfEachChange: each change that concerns an agent becomes one event in its queue,
// carrying what the agent needs to act on it; changes that concern no other agent tell
// nobody else.
func TestEventsOfEachChange(t *testing.T) {
	tests := []struct {
		name string
		// change makes the change; the world's alice.example.test is the losing agent's.
		change func(w *transferWorld)
		// loser and gainer are the events the two agents are told, in order.
		loser, gainer []registry.EventType
		// check checks the last event of the losing agent.
		check func(t *testing.T, w *transferWorld, ev registry.Event)
	}{
		{
			name:   "registration",
			change: func(w *transferWorld) { w.register(w.loser, "bob.example.test") },
		},
		{
			name: "update",
			change: func(w *transferWorld) {
				w.update(w.loser, alice, "https://claims.loser.agent.test/alice", registry.StatusClientDeleteProhibited)
			},
		},
		{
			name:   "delete",
			change: func(w *transferWorld) { w.remove(w.loser, alice) },
			loser:  []registry.EventType{registry.EventIdentifierDeleted},
			check: func(t *testing.T, w *transferWorld, ev registry.Event) {
				if !ev.Data.PurgeTime.Equal(start.Add(redemptionPeriod)) || !slices.Equal(ev.Data.Statuses, []registry.Status{registry.StatusPendingDelete}) || ev.Data.Transfer != nil {
					t.Errorf("deleted event data %+v, want the purge time and pendingDelete", ev.Data)
				}
			},
		},
		{
			name: "restore",
			change: func(w *transferWorld) {
				w.update(w.loser, alice, "", registry.StatusClientTransferProhibited)
				w.remove(w.loser, alice)
				if err := w.restore(w.loser); err != nil {
					w.t.Fatal(err)
				}
			},
			loser: []registry.EventType{registry.EventIdentifierDeleted, registry.EventIdentifierRestored},
			check: func(t *testing.T, w *transferWorld, ev registry.Event) {
				if !slices.Equal(ev.Data.Statuses, []registry.Status{registry.StatusClientTransferProhibited}) || !ev.Data.PurgeTime.IsZero() {
					t.Errorf("restored event data %+v, want the statuses after the restore and no purge time", ev.Data)
				}
			},
		},
		{
			name: "purge",
			change: func(w *transferWorld) {
				w.clock.Set(w.remove(w.loser, alice).PurgeTime)
				w.sweepPurges(1)
			},
			loser: []registry.EventType{registry.EventIdentifierDeleted, registry.EventIdentifierPurged},
			check: func(t *testing.T, w *transferWorld, ev registry.Event) {
				if ev.Data.Statuses != nil || ev.Data.Transfer != nil || !ev.Time.Equal(w.clock.Now()) {
					t.Errorf("purged event %+v, want no data, at the purge", ev)
				}
			},
		},
		{
			name:   "server status",
			change: func(w *transferWorld) { w.serverStatus(alice, "court order", registry.StatusServerDeleteProhibited) },
			loser:  []registry.EventType{registry.EventServerStatusChanged},
			check: func(t *testing.T, w *transferWorld, ev registry.Event) {
				if ev.Data.Reason != "court order" || !slices.Equal(ev.Data.Statuses, []registry.Status{registry.StatusServerDeleteProhibited}) || ev.Data.PreviousStatuses != nil {
					t.Errorf("server status event data %+v, want the reason, the statuses and none before", ev.Data)
				}
			},
		},
		{
			name:   "transfer at once",
			change: func(w *transferWorld) { w.mustRequest() },
			loser:  []registry.EventType{registry.EventTransferCompletedOut},
			gainer: []registry.EventType{registry.EventTransferCompletedIn},
			check: func(t *testing.T, w *transferWorld, ev registry.Event) {
				if tr := ev.Data.Transfer; tr == nil || *tr != w.transfer {
					t.Errorf("completed event carries %+v, want the transfer %+v", tr, w.transfer)
				}
			},
		},
		{
			name:   "agent suspended",
			change: func(w *transferWorld) { w.setAgentState(w.loser, registry.AgentSuspended) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newTransferWorld(t)
			tt.change(w)
			if got := eventTypes(w.events(w.loser)); !slices.Equal(got, tt.loser) {
				t.Fatalf("the losing agent is told %v, want %v", got, tt.loser)
			}
			if got := eventTypes(w.events(w.gainer)); !slices.Equal(got, tt.gainer) {
				t.Fatalf("the gaining agent is told %v, want %v", got, tt.gainer)
			}
			if got := w.events(w.other); len(got) != 0 {
				t.Fatalf("the third agent is told %v, want nothing", eventTypes(got))
			}
			if tt.check != nil {
				evs := w.events(w.loser)
				ev := evs[len(evs)-1]
				if ev.AgentID != w.loser.ID || ev.Identifier != alice || !ev.AckTime.IsZero() {
					t.Fatalf("event %+v, want an unacknowledged event of the losing agent about alice", ev)
				}
				tt.check(t, w, ev)
			}
		})
	}
}

// TestEventQueue: an agent's events queue up oldest first, page by page, numbered 1, 2, 3, …,
// until it acknowledges them; acknowledging again changes nothing, and one agent's
// acknowledgements touch nothing of another's.
func TestEventQueue(t *testing.T) {
	w := newTransferWorld(t, pending)
	w.mustRequest()
	if err := w.reject(w.loser); err != nil {
		t.Fatal(err)
	}
	w.mustRequest()
	if err := w.approve(w.loser); err != nil {
		t.Fatal(err)
	}
	w.serverStatus(alice, "abuse", registry.StatusServerHold)
	// The gaining agent: rejected, approved, completed in, server status changed.
	var got []registry.Event
	token := ""
	for pages := 1; ; pages++ {
		evs, next, err := w.svc.ListEvents(w.ctx, w.gainer, 3, token)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, evs...)
		if token = next; token == "" {
			if pages != 2 {
				t.Fatalf("%d pages of 3 for 4 events, want 2", pages)
			}
			break
		}
	}
	want := []registry.EventType{registry.EventTransferRejected, registry.EventTransferApproved, registry.EventTransferCompletedIn, registry.EventServerStatusChanged}
	if !slices.Equal(eventTypes(got), want) {
		t.Fatalf("the gaining agent's events are %v, want %v", eventTypes(got), want)
	}
	for k, ev := range got {
		if ev.ID != int64(k+1) || ev.Time.IsZero() || !ev.AckTime.IsZero() {
			t.Fatalf("event %d = %+v, want number %d, a time, not acknowledged", k, ev, k+1)
		}
	}

	ack := func(a registry.Actor, ids ...int64) int {
		t.Helper()
		n, err := w.svc.AckEvents(w.ctx, a, ids)
		if err != nil {
			t.Fatalf("AckEvents(%v): %v", ids, err)
		}
		return n
	}
	if n := ack(w.gainer, 1, 3); n != 2 {
		t.Fatalf("acknowledged %d of [1 3], want 2", n)
	}
	if n := ack(w.gainer, 3, 1); n != 0 {
		t.Fatalf("acknowledging [3 1] again counted %d, want 0", n)
	}
	if ids := eventIDs(w.events(w.gainer)); !slices.Equal(ids, []int64{2, 4}) {
		t.Fatalf("unacknowledged events %v, want [2 4]", ids)
	}
	all := w.allEvents(w.gainer)
	if len(all) != 4 || !all[0].AckTime.Equal(w.clock.Now()) || !all[1].AckTime.IsZero() {
		t.Fatalf("all events %+v, want 4 with the acknowledged ones timed", all)
	}
	// The losing agent's queue is its own: its numbers, untouched by the gainer's acks.
	wantLoser := []registry.EventType{registry.EventTransferRequested, registry.EventTransferRequested, registry.EventTransferCompletedOut}
	if got := eventTypes(w.events(w.loser)); !slices.Equal(got, wantLoser) {
		t.Fatalf("the losing agent's events are %v, want %v", got, wantLoser)
	}
	if n := ack(w.gainer, 2, 4, 5); n != 2 {
		t.Fatalf("acknowledged %d of [2 4 5], want 2 (the gainer has no event 5)", n)
	}
	if evs := w.events(w.gainer); len(evs) != 0 {
		t.Fatalf("events left after acknowledging all: %v", eventIDs(evs))
	}
	if got := eventTypes(w.events(w.loser)); !slices.Equal(got, wantLoser) {
		t.Fatalf("the gainer's acknowledgements hid the loser's events: %v", got)
	}
}

// TestAckEventsRefusals: acknowledgements name positive ids, at most a page of them.
func TestAckEventsRefusals(t *testing.T) {
	w := newWorld(t)
	a := w.newAgent("alpha")
	tests := []struct {
		name   string
		ids    []int64
		want   int
		reason string
	}{
		{name: "none", ids: nil, want: 0},
		{name: "ids it has not had", ids: []int64{1, 2, 99}, want: 0},
		{name: "a page of them", ids: make1000(), want: 0},
		{name: "zero", ids: []int64{1, 0}, reason: "INVALID_EVENT_ID"},
		{name: "negative", ids: []int64{-1}, reason: "INVALID_EVENT_ID"},
		{name: "more than a page", ids: append(make1000(), 1001), reason: "TOO_MANY_EVENT_IDS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := w.svc.AckEvents(w.ctx, a, tt.ids)
			if tt.reason != "" {
				wantErr(t, err, registry.KindInvalidArgument, tt.reason)
				return
			}
			if err != nil || n != tt.want {
				t.Fatalf("AckEvents = %d, %v; want %d", n, err, tt.want)
			}
		})
	}
}

func make1000() []int64 {
	ids := make([]int64, registry.MaxPageSize)
	for k := range ids {
		ids[k] = int64(k + 1)
	}
	return ids
}

// TestEventStream: where a reader that names no event starts (just before the oldest
// unacknowledged event, or after the newest when all are acknowledged) and what it reads from
// there: every event, acknowledged or not, in order.
func TestEventStream(t *testing.T) {
	w := newWorld(t)
	a := w.newAgent("alpha")
	w.register(a, alice)
	startAt := func() int64 {
		t.Helper()
		id, err := w.svc.EventsStart(w.ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	if id := startAt(); id != 0 {
		t.Fatalf("with no events a reader starts after %d, want 0", id)
	}
	hold := func(on bool) {
		var st []registry.Status
		if on {
			st = []registry.Status{registry.StatusServerHold}
		}
		w.serverStatus(alice, "", st...)
	}
	for k := range 4 {
		hold(k%2 == 0)
	}
	if id := startAt(); id != 0 {
		t.Fatalf("with events 1 to 4 unacknowledged a reader starts after %d, want 0", id)
	}
	if _, err := w.svc.AckEvents(w.ctx, a, []int64{1, 2, 4}); err != nil {
		t.Fatal(err)
	}
	if id := startAt(); id != 2 {
		t.Fatalf("with event 3 the oldest unacknowledged a reader starts after %d, want 2", id)
	}
	evs, err := w.svc.EventsAfter(w.ctx, a, 2, 0)
	if err != nil || !slices.Equal(eventIDs(evs), []int64{3, 4}) || evs[1].AckTime.IsZero() {
		t.Fatalf("EventsAfter(2) = %+v, %v; want 3 and 4, the acknowledged one too", evs, err)
	}
	if evs, err := w.svc.EventsAfter(w.ctx, a, 1, 2); err != nil || !slices.Equal(eventIDs(evs), []int64{2, 3}) {
		t.Fatalf("EventsAfter(1, limit 2) = %v, %v; want [2 3]", eventIDs(evs), err)
	}
	if _, err := w.svc.AckEvents(w.ctx, a, []int64{3}); err != nil {
		t.Fatal(err)
	}
	if id := startAt(); id != 4 {
		t.Fatalf("with every event acknowledged a reader starts after %d, want the newest, 4", id)
	}
	_, err = w.svc.EventsAfter(w.ctx, a, -1, 0)
	wantErr(t, err, registry.KindInvalidArgument, "INVALID_EVENT_ID")

	// A backlog larger than a page is read in pages of at most MaxPageSize.
	for k := range registry.MaxPageSize + 1 {
		hold(k%2 == 0)
	}
	evs, err = w.svc.EventsAfter(w.ctx, a, 4, registry.MaxPageSize+50)
	if err != nil || len(evs) != registry.MaxPageSize || evs[0].ID != 5 || evs[len(evs)-1].ID != registry.MaxPageSize+4 {
		t.Fatalf("EventsAfter(4) read %d events, %v; want a page of %d from 5", len(evs), err, registry.MaxPageSize)
	}
	rest, err := w.svc.EventsAfter(w.ctx, a, evs[len(evs)-1].ID, 0)
	if err != nil || len(rest) != 1 || rest[0].ID != registry.MaxPageSize+5 {
		t.Fatalf("the rest = %v, %v; want the last event", eventIDs(rest), err)
	}
}

// TestEventSignal: a Service wakes the watchers of an agent when it commits an event for it;
// changes that tell the agent nothing, refused changes and other instances' changes do not.
func TestEventSignal(t *testing.T) {
	w := newWorld(t)
	a, b := w.newAgent("alpha"), w.newAgent("beta")
	w.register(a, alice)
	signalled := func(c <-chan struct{}) bool {
		select {
		case <-c:
			return true
		default:
			return false
		}
	}
	forA, forB := w.svc.EventSignal(a.ID), w.svc.EventSignal(b.ID)
	w.update(a, alice, "https://claims.alpha.agent.test/alice")
	if _, err := w.svc.SetServerStatus(w.ctx, operator, alice, []registry.Status{registry.StatusClientDeleteProhibited}, "", ""); err == nil {
		t.Fatal("a client status was set by SetServerStatus")
	}
	if _, err := w.instance().SetServerStatus(w.ctx, operator, alice, []registry.Status{registry.StatusServerHold}, "elsewhere", ""); err != nil {
		t.Fatal(err)
	}
	if signalled(forA) {
		t.Fatal("the watchers were woken without an event committed by this instance")
	}
	w.serverStatus(alice, "here")
	if !signalled(forA) {
		t.Fatal("an event committed here did not wake the agent's watchers")
	}
	if signalled(forB) {
		t.Fatal("another agent's watchers were woken")
	}
	// A signal wakes the watchers once; a new wait waits for the next event.
	again := w.svc.EventSignal(a.ID)
	if signalled(again) {
		t.Fatal("a new wait is woken by an old event")
	}
	w.remove(a, alice)
	if !signalled(again) {
		t.Fatal("the next event did not wake the new wait")
	}
}

// TestEventRetention: acknowledged events are deleted once acknowledged longer than the
// retention ago; unacknowledged ones stay however old, and numbering goes on after deletions.
func TestEventRetention(t *testing.T) {
	for _, tc := range []struct {
		name      string
		opts      []option
		retention time.Duration
	}{
		{"default", nil, 30 * 24 * time.Hour},
		{"configured", []option{func(c *registry.Config) { c.EventRetention = time.Hour }}, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.opts...)
			a, b := w.newAgent("alpha"), w.newAgent("beta")
			w.register(a, alice)
			w.register(b, "bob.example.test")
			for _, name := range []string{alice, "bob.example.test"} {
				w.serverStatus(name, "one", registry.StatusServerHold)
				w.serverStatus(name, "two")
				w.serverStatus(name, "three", registry.StatusServerHold)
			}
			w.clock.Advance(time.Minute)
			if _, err := w.svc.AckEvents(w.ctx, a, []int64{1, 2}); err != nil {
				t.Fatal(err)
			}
			w.clock.Advance(tc.retention)
			if n := w.sweep(w.svc.SweepEvents); n != 0 {
				t.Fatalf("SweepEvents at the retention deleted %d, want 0", n)
			}
			w.clock.Advance(time.Microsecond)
			if n := w.sweep(w.svc.SweepEvents); n != 2 {
				t.Fatalf("SweepEvents after the retention deleted %d, want alpha's 2 acknowledged", n)
			}
			if ids := eventIDs(w.allEvents(a)); !slices.Equal(ids, []int64{3}) {
				t.Fatalf("alpha's events left: %v, want [3]", ids)
			}
			if ids := eventIDs(w.allEvents(b)); !slices.Equal(ids, []int64{1, 2, 3}) {
				t.Fatalf("beta's unacknowledged events left: %v, want [1 2 3]", ids)
			}
			w.serverStatus(alice, "four")
			if ids := eventIDs(w.events(a)); !slices.Equal(ids, []int64{3, 4}) {
				t.Fatalf("alpha's events after a new one: %v, want [3 4]", ids)
			}
			if id, err := w.svc.EventsStart(w.ctx, a); err != nil || id != 2 {
				t.Fatalf("EventsStart = %d, %v; want 2", id, err)
			}
		})
	}
}

// TestListEventsPaging: ListEvents pages as every listing does.
func TestListEventsPaging(t *testing.T) {
	w := newWorld(t)
	a := w.newAgent("alpha")
	w.register(a, alice)
	for k := range 5 {
		var st []registry.Status
		if k%2 == 0 {
			st = []registry.Status{registry.StatusServerHold}
		}
		w.serverStatus(alice, "", st...)
	}
	evs, next, err := w.svc.ListEvents(w.ctx, a, 2, "")
	if err != nil || !slices.Equal(eventIDs(evs), []int64{1, 2}) || next == "" {
		t.Fatalf("first page = %v, %q, %v", eventIDs(evs), next, err)
	}
	// An acknowledgement between pages does not shift the next page.
	if _, err := w.svc.AckEvents(w.ctx, a, []int64{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	evs, next, err = w.svc.ListEvents(w.ctx, a, 2, next)
	if err != nil || !slices.Equal(eventIDs(evs), []int64{4, 5}) || next != "" {
		t.Fatalf("second page = %v, %q, %v; want [4 5] and the end", eventIDs(evs), next, err)
	}
	_, _, err = w.svc.ListEvents(w.ctx, a, -1, "")
	wantErr(t, err, registry.KindInvalidArgument, "INVALID_PAGE_SIZE")
	_, _, err = w.svc.ListEvents(w.ctx, a, 0, "garbage!")
	wantErr(t, err, registry.KindInvalidArgument, "INVALID_PAGE_TOKEN")
	// A token of another listing is refused.
	w.newAgent("beta")
	_, agentsToken, err := w.svc.ListAgents(w.ctx, 1, "")
	if err != nil || agentsToken == "" {
		t.Fatalf("ListAgents = %q, %v; want a next page", agentsToken, err)
	}
	_, _, err = w.svc.ListEvents(w.ctx, a, 0, agentsToken)
	wantErr(t, err, registry.KindInvalidArgument, "INVALID_PAGE_TOKEN")
}

// racingStore is the world's store, but runs then, once, just after its first read of an
// agent's unacknowledged events and just before its first read of the agent's newest event
// id: a change committed between EventsStart's two reads.
type racingStore struct {
	registry.Store
	once sync.Once
	then func()
}

func (s *racingStore) ListEvents(ctx context.Context, agentID string, afterID int64, unackedOnly bool, limit int) ([]registry.Event, error) {
	evs, err := s.Store.ListEvents(ctx, agentID, afterID, unackedOnly, limit)
	if unackedOnly {
		s.once.Do(s.then)
	}
	return evs, err
}

func (s *racingStore) LastEventID(ctx context.Context, agentID string) (int64, error) {
	id, err := s.Store.LastEventID(ctx, agentID)
	s.once.Do(s.then)
	return id, err
}

// TestEventsStartMissesNoEventCommittedMeanwhile: an event committed while a new stream
// works out where to start is sent on it, whichever of the start's two reads it falls
// between; a start past it would leave the stream waiting for a signal already given.
func TestEventsStartMissesNoEventCommittedMeanwhile(t *testing.T) {
	w := newWorld(t)
	a := w.newAgent("alpha")
	w.register(a, alice)
	// Every event acknowledged: the start is after the newest.
	var ids []int64
	for _, ev := range w.events(a) {
		ids = append(ids, ev.ID)
	}
	if _, err := w.svc.AckEvents(w.ctx, a, ids); err != nil {
		t.Fatal(err)
	}
	racing := &racingStore{Store: w.store, then: func() { w.serverStatus(alice, "abuse report", registry.StatusServerHold) }}
	svc := w.instance(func(c *registry.Config) { c.Store = racing })
	start, err := svc.EventsStart(w.ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := svc.EventsAfter(w.ctx, a, start, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Type != registry.EventServerStatusChanged {
		t.Fatalf("EventsAfter(EventsStart) = %v, want the server status change committed meanwhile", evs)
	}
}
