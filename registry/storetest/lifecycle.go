package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/dnsverify"
	"github.com/id4me/id4me-registry/registry"
)

// The tests of the lifecycle: delete and purge, transfers, event queues, the _openid checks and
// the claims of background work.

func normOpenID(st registry.OpenIDState) registry.OpenIDState {
	st.CheckTime, st.NextCheck = norm(st.CheckTime), norm(st.NextCheck)
	return st
}

func newTransfer(id, identifier, losing, gaining string, status registry.TransferStatus, act time.Time) registry.Transfer {
	return registry.Transfer{
		ID:             id,
		Identifier:     identifier,
		GainingAgentID: gaining,
		LosingAgentID:  losing,
		ChallengeID:    "ch-" + id,
		Status:         status,
		RequestTime:    t0,
		ActTime:        act,
	}
}

func normTransfer(tr registry.Transfer) registry.Transfer {
	tr.RequestTime, tr.ActTime = norm(tr.RequestTime), norm(tr.ActTime)
	return tr
}

func normTransfers(trs ...registry.Transfer) []registry.Transfer {
	var out []registry.Transfer
	for _, tr := range trs {
		out = append(out, normTransfer(tr))
	}
	return out
}

// createTransfers creates the transfers, and for each the identifier it is about (sponsored
// by the losing agent) unless that exists.
func createTransfers(t *testing.T, s registry.Store, trs ...registry.Transfer) {
	t.Helper()
	inTx(t, s, func(tx registry.Tx) error {
		for _, tr := range trs {
			_, err := tx.GetIdentifier(t.Context(), tr.Identifier)
			if registry.KindOf(err) == registry.KindNotFound {
				i := newIdentifier(tr.Identifier, tr.LosingAgentID, "id-"+tr.Identifier)
				i.OpenID.NextCheck = t0.Add(10 * 365 * 24 * time.Hour) // not due for a check
				if err = tx.CreateIdentity(t.Context(), newIdentity(i.IdentityID)); err == nil {
					err = tx.CreateIdentifier(t.Context(), i)
				}
			}
			if err != nil {
				return err
			}
			if err := tx.CreateTransfer(t.Context(), tr); err != nil {
				return err
			}
		}
		return nil
	})
}

func transferIDs(trs []registry.Transfer) []string {
	var ids []string
	for _, tr := range trs {
		ids = append(ids, tr.ID)
	}
	return ids
}

func identifierNames(is []registry.Identifier) []string {
	var names []string
	for _, i := range is {
		names = append(names, i.Name)
	}
	return names
}

// createIdentifiers creates each identifier with an identity of its own, named after it.
func createIdentifiers(t *testing.T, s registry.Store, is ...registry.Identifier) {
	t.Helper()
	inTx(t, s, func(tx registry.Tx) error {
		for _, i := range is {
			if err := tx.CreateIdentity(t.Context(), newIdentity(i.IdentityID)); err != nil {
				return err
			}
			if err := tx.CreateIdentifier(t.Context(), i); err != nil {
				return err
			}
		}
		return nil
	})
}

// testIdentifierLifecycle: the delete and purge times and the _openid state are stored with an
// identifier; UpdateIdentifier writes the former and leaves the latter alone.
func testIdentifierLifecycle(t *testing.T, s registry.Store) {
	ctx := t.Context()
	setup(t, s, []string{"a1"}, "id1", "id2")
	gone := newIdentifier("gone.example", "a1", "id1")
	gone.Statuses = []registry.Status{registry.StatusPendingDelete}
	gone.DeleteTime = t0.Add(time.Hour + 1)
	gone.PurgeTime = t0.Add(30*24*time.Hour + 1)
	gone.OpenID = registry.OpenIDState{
		Status:         dnsverify.OpenIDMatches,
		Record:         "v=OID1;iss=id.example;clp=a1.example",
		Issuer:         "id.example",
		ClaimsProvider: "a1.example",
		Detail:         "the record names this authority and the sponsor",
		CheckTime:      t0.Add(-time.Minute + 7),
		NextCheck:      t0.Add(24*time.Hour + 3),
	}
	fresh := newIdentifier("fresh.example", "a1", "id2")
	inTx(t, s, func(tx registry.Tx) error {
		if err := tx.CreateIdentifier(ctx, gone); err != nil {
			return err
		}
		return tx.CreateIdentifier(ctx, fresh)
	})
	got, err := s.GetIdentifier(ctx, "gone.example")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "GetIdentifier of an identifier pending delete", got, normIdentifier(gone))
	got, err = s.GetIdentifier(ctx, "fresh.example")
	if err != nil {
		t.Fatal(err)
	}
	// A new identifier with no next check set is due for one at once.
	if !got.OpenID.NextCheck.Equal(norm(fresh.CreateTime)) || got.OpenID.Status != "" || !got.OpenID.CheckTime.IsZero() {
		t.Fatalf("new identifier's _openid state = %+v, want no check yet and the next due at creation %v", got.OpenID, norm(fresh.CreateTime))
	}
	wantEqual(t, "GetIdentifier of a new identifier", got, normIdentifier(fresh))
	list, err := s.ListIdentifiers(ctx, "a1", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "ListIdentifiers", list, []registry.Identifier{normIdentifier(fresh), normIdentifier(gone)})

	// A restore clears the delete and purge times. The _openid state the caller holds is not
	// written.
	restored := gone
	restored.Statuses, restored.DeleteTime, restored.PurgeTime = nil, time.Time{}, time.Time{}
	restored.UpdateTime, restored.Version = t0.Add(2*time.Hour), 2
	restored.OpenID = registry.OpenIDState{Status: dnsverify.OpenIDMissing, NextCheck: t0}
	inTx(t, s, func(tx registry.Tx) error { return tx.UpdateIdentifier(ctx, restored) })
	got, err = s.GetIdentifier(ctx, "gone.example")
	if err != nil {
		t.Fatal(err)
	}
	want := normIdentifier(restored)
	want.OpenID = normOpenID(gone.OpenID)
	wantEqual(t, "GetIdentifier after a restore", got, want)

	// Deleting again sets them.
	deleted := got
	deleted.Statuses = []registry.Status{registry.StatusPendingDelete}
	deleted.DeleteTime, deleted.PurgeTime = t0.Add(3*time.Hour), t0.Add(3*time.Hour+30*24*time.Hour)
	deleted.UpdateTime, deleted.Version = t0.Add(3*time.Hour), 3
	inTx(t, s, func(tx registry.Tx) error { return tx.UpdateIdentifier(ctx, deleted) })
	got, err = s.GetIdentifier(ctx, "gone.example")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "GetIdentifier after a second delete", got, normIdentifier(deleted))
}

// testOpenIDState: SetOpenIDState stores a check's outcome beside the identifier without
// changing it, and only while the name is still the identifier of the identity checked.
func testOpenIDState(t *testing.T, s registry.Store) {
	ctx := t.Context()
	setup(t, s, []string{"a1"})
	alice := newIdentifier("alice.example", "a1", "id-alice")
	createIdentifiers(t, s, alice)
	before, err := s.GetIdentifier(ctx, "alice.example")
	if err != nil {
		t.Fatal(err)
	}

	st := registry.OpenIDState{
		Status:         dnsverify.OpenIDMismatch,
		Record:         "v=OID1;iss=other.example;clp=a1.example",
		Issuer:         "other.example",
		ClaimsProvider: "a1.example",
		Detail:         "iss names another authority",
		CheckTime:      t0.Add(time.Hour + 5),
		NextCheck:      t0.Add(2*time.Hour + 5),
	}
	set := func(name, identityID string, st registry.OpenIDState) bool {
		t.Helper()
		var ok bool
		inTx(t, s, func(tx registry.Tx) error {
			var err error
			ok, err = tx.SetOpenIDState(ctx, name, identityID, st)
			return err
		})
		return ok
	}
	if !set("alice.example", "id-alice", st) {
		t.Fatal("SetOpenIDState wrote nothing")
	}
	got, err := s.GetIdentifier(ctx, "alice.example")
	if err != nil {
		t.Fatal(err)
	}
	want := before
	want.OpenID = normOpenID(st)
	wantEqual(t, "GetIdentifier after SetOpenIDState", got, want)
	if got.Etag() != before.Etag() {
		t.Fatalf("etag changed from %s to %s: the _openid state is not part of the identifier", before.Etag(), got.Etag())
	}

	// A check of the name under another identity (purged and registered again since) is
	// not stored, nor one of a name not registered.
	other := st
	other.Status = dnsverify.OpenIDMatches
	if set("alice.example", "id-other", other) {
		t.Fatal("SetOpenIDState wrote the state of another identity's identifier")
	}
	if set("missing.example", "id-alice", other) {
		t.Fatal("SetOpenIDState wrote the state of a missing identifier")
	}
	if got, err := s.GetIdentifier(ctx, "alice.example"); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("after refused writes: %+v, %v; want %+v", got, err, want)
	}

	// A later outcome replaces the whole state; a zero check time is stored as zero.
	st2 := registry.OpenIDState{Status: dnsverify.OpenIDMissing, Detail: "no record", NextCheck: t0.Add(3 * time.Hour)}
	if !set("alice.example", "id-alice", st2) {
		t.Fatal("SetOpenIDState wrote nothing")
	}
	got, err = s.GetIdentifier(ctx, "alice.example")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "_openid state after a second check", got.OpenID, normOpenID(st2))

	// UpdateIdentifier leaves the state alone, whatever the caller holds.
	upd := got
	upd.OpenID = registry.OpenIDState{NextCheck: t0}
	upd.ClaimsEndpoint, upd.UpdateTime, upd.Version = "https://a1.example/alice", t0.Add(4*time.Hour), 2
	inTx(t, s, func(tx registry.Tx) error { return tx.UpdateIdentifier(ctx, upd) })
	got, err = s.GetIdentifier(ctx, "alice.example")
	if err != nil {
		t.Fatal(err)
	}
	want = normIdentifier(upd)
	want.OpenID = normOpenID(st2)
	wantEqual(t, "GetIdentifier after UpdateIdentifier", got, want)
}

func testTransfers(t *testing.T, s registry.Store) {
	ctx := t.Context()
	setup(t, s, []string{"a1", "a2", "a3"})
	deadline := t0.Add(5*24*time.Hour + 1)
	tr1 := newTransfer("tr_01", "alice.example", "a1", "a2", registry.TransferPending, deadline)
	createTransfers(t, s, tr1)
	got, err := s.GetTransfer(ctx, "tr_01")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "GetTransfer", got, normTransfer(tr1))
	_, err = s.GetTransfer(ctx, "tr_missing")
	wantErr(t, err, registry.KindNotFound, "TRANSFER_NOT_FOUND")
	got, err = s.PendingTransfer(ctx, "alice.example")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "PendingTransfer", got, normTransfer(tr1))
	_, err = s.PendingTransfer(ctx, "bob.example")
	wantErr(t, err, registry.KindNotFound, "TRANSFER_NOT_FOUND")

	sameID := newTransfer("tr_01", "bob.example", "a1", "a2", registry.TransferPending, deadline)
	err = s.Tx(ctx, func(tx registry.Tx) error { return tx.CreateTransfer(ctx, sameID) })
	wantErr(t, err, registry.KindAlreadyExists, "OBJECT_EXISTS")

	// A second pending transfer of one identifier is refused, and the transaction goes on.
	second := newTransfer("tr_02", "alice.example", "a1", "a3", registry.TransferPending, deadline)
	bob := newTransfer("tr_03", "bob.example", "a2", "a1", registry.TransferPending, deadline)
	inTx(t, s, func(tx registry.Tx) error {
		wantErr(t, tx.CreateTransfer(ctx, second), registry.KindFailedPrecondition, "TRANSFER_PENDING")
		return tx.CreateTransfer(ctx, bob)
	})
	_, err = s.GetTransfer(ctx, "tr_02")
	wantErr(t, err, registry.KindNotFound, "TRANSFER_NOT_FOUND")
	if got, err := s.GetTransfer(ctx, "tr_03"); err != nil || got.ID != "tr_03" {
		t.Fatalf("GetTransfer(tr_03) = %+v, %v", got, err)
	}
	// A finished transfer beside the pending one is no conflict.
	old := newTransfer("tr_00", "alice.example", "a3", "a1", registry.TransferClientRejected, t0.Add(-time.Hour))
	createTransfers(t, s, old)

	// A rejection: only from pending.
	rejected := tr1
	rejected.Status, rejected.ActTime = registry.TransferClientRejected, t0.Add(time.Hour+9)
	inTx(t, s, func(tx registry.Tx) error { return tx.UpdateTransfer(ctx, rejected, registry.TransferPending) })
	got, err = s.GetTransfer(ctx, "tr_01")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "GetTransfer after UpdateTransfer", got, normTransfer(rejected))
	approved := tr1
	approved.Status, approved.ActTime = registry.TransferServerApproved, deadline
	err = s.Tx(ctx, func(tx registry.Tx) error { return tx.UpdateTransfer(ctx, approved, registry.TransferPending) })
	wantErr(t, err, registry.KindAborted, "CONCURRENT_UPDATE")
	if got, err := s.GetTransfer(ctx, "tr_01"); err != nil || got.Status != registry.TransferClientRejected {
		t.Fatalf("after a lost update: %+v, %v; want it rejected still", got, err)
	}
	missing := newTransfer("tr_missing", "carol.example", "a1", "a2", registry.TransferClientCancelled, deadline)
	err = s.Tx(ctx, func(tx registry.Tx) error { return tx.UpdateTransfer(ctx, missing, registry.TransferPending) })
	wantErr(t, err, registry.KindNotFound, "TRANSFER_NOT_FOUND")
	_, err = s.PendingTransfer(ctx, "alice.example")
	wantErr(t, err, registry.KindNotFound, "TRANSFER_NOT_FOUND")

	// Once the pending transfer is finished, another may be requested.
	createTransfers(t, s, second)
	got, err = s.PendingTransfer(ctx, "alice.example")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "PendingTransfer after a new request", got, normTransfer(second))
}

func testListTransfers(t *testing.T, s registry.Store) {
	ctx := t.Context()
	setup(t, s, []string{"a1", "a2", "a3", "a4"})
	p, done := registry.TransferPending, registry.TransferClientApproved
	all := []registry.Transfer{
		newTransfer("tr_01", "n01.example", "a1", "a2", p, t0),
		newTransfer("tr_02", "n02.example", "a2", "a1", done, t0),
		newTransfer("tr_03", "n03.example", "a1", "a3", p, t0),
		newTransfer("tr_04", "n04.example", "a3", "a2", done, t0),
		newTransfer("tr_05", "n05.example", "a2", "a1", p, t0),
		newTransfer("tr_06", "n06.example", "a3", "a1", done, t0),
		newTransfer("tr_07", "n07.example", "a1", "a2", done, t0),
		newTransfer("tr_08", "n08.example", "a3", "a2", p, t0),
	}
	// Created out of order: listed by ID.
	for _, i := range []int{4, 0, 7, 2, 6, 1, 5, 3} {
		createTransfers(t, s, all[i])
	}
	pick := func(idx ...int) []registry.Transfer {
		var out []registry.Transfer
		for _, i := range idx {
			out = append(out, normTransfer(all[i-1]))
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		f     registry.TransferFilter
		after string
		limit int
		want  []registry.Transfer
	}{
		{"in", registry.TransferFilter{AgentID: "a1", Direction: registry.TransferIn}, "", 100, pick(2, 5, 6)},
		{"out", registry.TransferFilter{AgentID: "a1", Direction: registry.TransferOut}, "", 100, pick(1, 3, 7)},
		{"both", registry.TransferFilter{AgentID: "a1", Direction: registry.TransferBoth}, "", 100, pick(1, 2, 3, 5, 6, 7)},
		{"both pending", registry.TransferFilter{AgentID: "a1", Direction: registry.TransferBoth, PendingOnly: true}, "", 100, pick(1, 3, 5)},
		{"in pending", registry.TransferFilter{AgentID: "a1", Direction: registry.TransferIn, PendingOnly: true}, "", 100, pick(5)},
		{"out pending of a3", registry.TransferFilter{AgentID: "a3", Direction: registry.TransferOut, PendingOnly: true}, "", 100, pick(8)},
		{"limit", registry.TransferFilter{AgentID: "a2", Direction: registry.TransferBoth}, "", 3, pick(1, 2, 4)},
		{"after", registry.TransferFilter{AgentID: "a1", Direction: registry.TransferBoth}, "tr_03", 2, pick(5, 6)},
		{"after the last", registry.TransferFilter{AgentID: "a1", Direction: registry.TransferBoth}, "tr_07", 2, nil},
		{"none", registry.TransferFilter{AgentID: "a4", Direction: registry.TransferBoth}, "", 100, nil},
	} {
		got, err := s.ListTransfers(ctx, tc.f, tc.after, tc.limit)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(got) == 0 {
			got = nil
		}
		wantEqual(t, "ListTransfers "+tc.name, got, tc.want)
	}

	// Page by page.
	var got []registry.Transfer
	after := ""
	for pages := 0; ; pages++ {
		if pages > len(all) {
			t.Fatal("ListTransfers does not end")
		}
		page, err := s.ListTransfers(ctx, registry.TransferFilter{AgentID: "a2"}, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 2 {
			t.Fatalf("ListTransfers returned %d transfers, limit 2", len(page))
		}
		if len(page) == 0 {
			break
		}
		got = append(got, page...)
		after = page[len(page)-1].ID
	}
	wantEqual(t, "transfers of a2, page by page", got, pick(1, 2, 4, 5, 7, 8))
}

func newEvent(agentID string, typ registry.EventType, identifier string, at time.Time) registry.Event {
	tr := newTransfer("tr_"+identifier, identifier, "a1", agentID, registry.TransferPending, at.Add(time.Hour))
	return registry.Event{
		AgentID:    agentID,
		Type:       typ,
		Identifier: identifier,
		Time:       at,
		Data: registry.EventData{
			Transfer:         &tr,
			Statuses:         []registry.Status{registry.StatusPendingTransfer},
			PreviousStatuses: []registry.Status{registry.StatusClientDeleteProhibited},
			Reason:           "requested by " + agentID,
		},
	}
}

// wantEvents compares events; their data are compared as JSON, the form they are kept in.
func wantEvents(t *testing.T, what string, got, want []registry.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d events %+v, want %d %+v", what, len(got), got, len(want), want)
	}
	for i := range got {
		gd, _ := json.Marshal(got[i].Data)
		wd, _ := json.Marshal(want[i].Data)
		if string(gd) != string(wd) {
			t.Fatalf("%s: data of event %d:\n got %s\nwant %s", what, got[i].ID, gd, wd)
		}
		g, w := got[i], want[i]
		g.Data, w.Data = registry.EventData{}, registry.EventData{}
		w.Time, w.AckTime = norm(w.Time), norm(w.AckTime)
		wantEqual(t, fmt.Sprintf("%s: event %d", what, i), g, w)
	}
}

// testEvents: each agent's events are numbered 1, 2, 3, … without gaps; acknowledging sets the
// acknowledge time once.
func testEvents(t *testing.T, s registry.Store) {
	ctx := t.Context()
	setup(t, s, []string{"a1", "a2"})
	var e1, e2 []registry.Event // the events of a1 and a2, as written
	appendEvent := func(tx registry.Tx, e registry.Event, wantID int64) error {
		t.Helper()
		id, err := tx.AppendEvent(ctx, e)
		if err != nil {
			return err
		}
		if id != wantID {
			t.Fatalf("AppendEvent of %s = %d, want %d", e.AgentID, id, wantID)
		}
		return nil
	}
	inTx(t, s, func(tx registry.Tx) error {
		e1, e2 = nil, nil
		for i, e := range []registry.Event{
			newEvent("a1", registry.EventTransferRequested, "alice.example", t0),
			newEvent("a1", registry.EventTransferApproved, "bob.example", t0.Add(time.Second)),
			newEvent("a2", registry.EventTransferRequested, "alice.example", t0.Add(2*time.Second)),
		} {
			id := int64(i + 1)
			if e.AgentID == "a2" {
				id = 1
			}
			if err := appendEvent(tx, e, id); err != nil {
				return err
			}
			e.ID = id
			if e.AgentID == "a1" {
				e1 = append(e1, e)
			} else {
				e2 = append(e2, e)
			}
		}
		return nil
	})
	inTx(t, s, func(tx registry.Tx) error {
		e := newEvent("a1", registry.EventIdentifierDeleted, "carol.example", t0.Add(3*time.Second))
		e.Data = registry.EventData{PurgeTime: t0.Add(30 * 24 * time.Hour)}
		if err := appendEvent(tx, e, 3); err != nil {
			return err
		}
		e.ID = 3
		e1 = append(e1, e)
		f := newEvent("a2", registry.EventServerStatusChanged, "dave.example", t0.Add(4*time.Second))
		f.Data = registry.EventData{}
		if err := appendEvent(tx, f, 2); err != nil {
			return err
		}
		f.ID = 2
		e2 = append(e2, f)
		return nil
	})
	// A rolled-back transaction gives its number back.
	errBoom := errors.New("boom")
	err := s.Tx(ctx, func(tx registry.Tx) error {
		if err := appendEvent(tx, newEvent("a1", registry.EventIdentifierPurged, "x.example", t0), 4); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Tx = %v, want the function's error", err)
	}
	last := newEvent("a1", registry.EventOpenIDRecordChanged, "erin.example", t0.Add(5*time.Second))
	last.Data = registry.EventData{
		OpenID:               &registry.OpenIDState{Status: dnsverify.OpenIDMissing, CheckTime: t0, NextCheck: t0.Add(time.Hour)},
		PreviousOpenIDStatus: string(dnsverify.OpenIDMatches),
	}
	inTx(t, s, func(tx registry.Tx) error { return appendEvent(tx, last, 4) })
	last.ID = 4
	e1 = append(e1, last)

	list := func(agentID string, after int64, unacked bool, limit int) []registry.Event {
		t.Helper()
		got, err := s.ListEvents(ctx, agentID, after, unacked, limit)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	wantEvents(t, "events of a1", list("a1", 0, false, 10), e1)
	wantEvents(t, "events of a2", list("a2", 0, false, 10), e2)
	wantEvents(t, "events of a1 after 1, limit 2", list("a1", 1, false, 2), e1[1:3])
	wantEvents(t, "events of a1 after 4", list("a1", 4, false, 2), nil)

	ack := func(agentID string, ids []int64, at time.Time) int {
		t.Helper()
		var n int
		inTx(t, s, func(tx registry.Tx) error {
			var err error
			n, err = tx.AckEvents(ctx, agentID, ids, at)
			return err
		})
		return n
	}
	at1, at2, at3 := t0.Add(time.Minute+1), t0.Add(2*time.Minute+2), t0.Add(3*time.Minute+3)
	if n := ack("a1", []int64{1, 3, 99}, at1); n != 2 {
		t.Fatalf("AckEvents(a1, 1 3 99) = %d, want 2", n)
	}
	if n := ack("a1", []int64{3, 1}, at2); n != 0 {
		t.Fatalf("AckEvents of acknowledged events = %d, want 0", n)
	}
	if n := ack("a1", nil, at2); n != 0 {
		t.Fatalf("AckEvents of no events = %d, want 0", n)
	}
	// Another agent's numbers are its own.
	if n := ack("a2", []int64{2}, at2); n != 1 {
		t.Fatalf("AckEvents(a2, 2) = %d, want 1", n)
	}
	if n := ack("a1", []int64{2, 3}, at3); n != 1 {
		t.Fatalf("AckEvents(a1, 2 3) = %d, want 1", n)
	}
	e1[0].AckTime, e1[1].AckTime, e1[2].AckTime = at1, at3, at1
	e2[1].AckTime = at2
	wantEvents(t, "events of a1 after acknowledgements", list("a1", 0, false, 10), e1)
	wantEvents(t, "unacknowledged events of a1", list("a1", 0, true, 10), e1[3:])
	wantEvents(t, "unacknowledged events of a2", list("a2", 0, true, 10), e2[:1])
	wantEvents(t, "unacknowledged events of a2 after 1", list("a2", 1, true, 10), nil)
}

// testConcurrentEvents: transactions appending events for one agent at once get the numbers
// 1…n, and a reader never sees a number before all smaller ones.
func testConcurrentEvents(t *testing.T, s registry.Store) {
	ctx := t.Context()
	setup(t, s, []string{"a1"})
	const n = 24
	ids := make([]int64, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	writing := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			var id int64
			errs[i] = s.Tx(ctx, func(tx registry.Tx) error {
				var err error
				id, err = tx.AppendEvent(ctx, newEvent("a1", registry.EventTransferRequested, fmt.Sprintf("n%02d.example", i), t0))
				if err != nil {
					return err
				}
				// Hold the number a while before committing, so that transactions overlap.
				time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
				return nil
			})
			ids[i] = id
		})
	}
	go func() {
		wg.Wait()
		close(writing)
	}()

	var seen int64
	for done := false; !done; {
		select {
		case <-writing:
			done = true // one more read sees every commit
		default:
		}
		page, err := s.ListEvents(ctx, "a1", seen, false, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			if e.ID != seen+1 {
				t.Fatalf("a reader saw event %d after %d: %d was not visible yet", e.ID, seen, seen+1)
			}
			seen = e.ID
		}
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("transaction %d: %v", i, err)
		}
	}
	slices.Sort(ids)
	for i, id := range ids {
		if id != int64(i+1) {
			t.Fatalf("event numbers %v, want 1…%d", ids, n)
		}
	}
	if seen != n {
		t.Fatalf("the reader saw events up to %d, want %d", seen, n)
	}
}

func testClaimDueTransfers(t *testing.T, s registry.Store) {
	ctx := t.Context()
	setup(t, s, []string{"a1", "a2"})
	now := t0.Add(24 * time.Hour)
	p := registry.TransferPending
	trs := []registry.Transfer{
		newTransfer("tr_1", "n1.example", "a1", "a2", p, now.Add(-time.Hour)),
		newTransfer("tr_2", "n2.example", "a1", "a2", p, now.Add(-3*time.Hour)),
		newTransfer("tr_3", "n3.example", "a1", "a2", p, now), // due at now exactly
		newTransfer("tr_4", "n4.example", "a1", "a2", p, now.Add(time.Microsecond)),
		newTransfer("tr_5", "n5.example", "a1", "a2", registry.TransferClientApproved, now.Add(-5*time.Hour)),
		newTransfer("tr_6", "n6.example", "a1", "a2", p, now.Add(-2*time.Hour)),
	}
	createTransfers(t, s, trs...)
	claim := func(now time.Time, limit int) []registry.Transfer {
		t.Helper()
		var got []registry.Transfer
		inTx(t, s, func(tx registry.Tx) error {
			var err error
			got, err = tx.ClaimDueTransfers(ctx, now, limit)
			return err
		})
		if len(got) == 0 {
			got = nil
		}
		return got
	}
	wantEqual(t, "ClaimDueTransfers, limit 2", claim(now, 2), normTransfers(trs[1], trs[5]))
	wantEqual(t, "ClaimDueTransfers", claim(now, 10), normTransfers(trs[1], trs[5], trs[0], trs[2]))
	wantEqual(t, "ClaimDueTransfers before any is due", claim(now.Add(-4*time.Hour), 10), nil)
}

// pendingDelete returns an identifier deleted and due for purging at purge.
func pendingDelete(name string, purge time.Time) registry.Identifier {
	i := newIdentifier(name, "a1", "id-"+name)
	i.Statuses = []registry.Status{registry.StatusPendingDelete}
	i.DeleteTime, i.PurgeTime = purge.Add(-30*24*time.Hour), purge
	return i
}

func testClaimDuePurges(t *testing.T, s registry.Store) {
	ctx := t.Context()
	setup(t, s, []string{"a1"})
	now := t0.Add(24 * time.Hour)
	is := []registry.Identifier{
		pendingDelete("p1.example", now.Add(-time.Hour)),
		pendingDelete("p2.example", now.Add(-3*time.Hour)),
		pendingDelete("p3.example", now),
		pendingDelete("p4.example", now.Add(time.Microsecond)),
		newIdentifier("active.example", "a1", "id-active"),
		pendingDelete("p6.example", now.Add(-2*time.Hour)),
	}
	createIdentifiers(t, s, is...)
	claim := func(now time.Time, limit int) []registry.Identifier {
		t.Helper()
		var got []registry.Identifier
		inTx(t, s, func(tx registry.Tx) error {
			var err error
			got, err = tx.ClaimDuePurges(ctx, now, limit)
			return err
		})
		if len(got) == 0 {
			got = nil
		}
		return got
	}
	norms := func(idx ...int) []registry.Identifier {
		var out []registry.Identifier
		for _, i := range idx {
			out = append(out, normIdentifier(is[i]))
		}
		return out
	}
	wantEqual(t, "ClaimDuePurges, limit 2", claim(now, 2), norms(1, 5))
	wantEqual(t, "ClaimDuePurges", claim(now, 10), norms(1, 5, 0, 2))
	wantEqual(t, "ClaimDuePurges before any is due", claim(now.Add(-4*time.Hour), 10), nil)
}

// dueCheck returns an identifier whose next _openid check is due at next.
func dueCheck(name string, next time.Time) registry.Identifier {
	i := newIdentifier(name, "a1", "id-"+name)
	i.OpenID = registry.OpenIDState{
		Status:         dnsverify.OpenIDMatches,
		Record:         "v=OID1;iss=id.example;clp=a1.example",
		Issuer:         "id.example",
		ClaimsProvider: "a1.example",
		CheckTime:      next.Add(-24 * time.Hour),
		NextCheck:      next,
	}
	return i
}

func testClaimOpenIDChecks(t *testing.T, s registry.Store) {
	ctx := t.Context()
	setup(t, s, []string{"a1"})
	now := t0.Add(10 * 24 * time.Hour)
	is := []registry.Identifier{
		dueCheck("o1.example", now.Add(-time.Hour)),
		dueCheck("o2.example", now.Add(-3*time.Hour)),
		dueCheck("o3.example", now),
		dueCheck("o4.example", now.Add(time.Hour)),
		// Never checked: due since its creation, at t0.
		newIdentifier("o5.example", "a1", "id-o5.example"),
	}
	createIdentifiers(t, s, is...)
	lease := now.Add(10*time.Minute + 1)
	claim := func(now, lease time.Time, limit int) []registry.Identifier {
		t.Helper()
		var got []registry.Identifier
		inTx(t, s, func(tx registry.Tx) error {
			var err error
			got, err = tx.ClaimOpenIDChecks(ctx, now, lease, limit)
			return err
		})
		if len(got) == 0 {
			got = nil
		}
		return got
	}
	// What a claim returns: the identifier as stored, its next check moved to the lease's end.
	leased := func(lease time.Time, idx ...int) []registry.Identifier {
		var out []registry.Identifier
		for _, i := range idx {
			id := normIdentifier(is[i])
			id.OpenID.NextCheck = norm(lease)
			out = append(out, id)
		}
		return out
	}
	wantEqual(t, "ClaimOpenIDChecks, limit 2", claim(now, lease, 2), leased(lease, 4, 1))
	// The lease is stored; it changes neither the version nor the update time.
	for _, i := range []int{4, 1} {
		got, err := s.GetIdentifier(ctx, is[i].Name)
		if err != nil {
			t.Fatal(err)
		}
		wantEqual(t, "GetIdentifier of a claimed identifier", got, leased(lease, i)[0])
	}
	// The claimed are not due again while the lease runs.
	wantEqual(t, "ClaimOpenIDChecks, more", claim(now, lease, 10), leased(lease, 0, 2))
	wantEqual(t, "ClaimOpenIDChecks, none left", claim(now, lease, 10), nil)
	// A lease that ran out lapses.
	got := claim(lease, lease.Add(time.Minute), 10)
	names := identifierNames(got)
	slices.Sort(names) // due at the same time
	wantEqual(t, "claims after the lease", names, []string{"o1.example", "o2.example", "o3.example", "o5.example"})
}

func testDeleteExpiredChallenges(t *testing.T, s registry.Store) {
	ctx := t.Context()
	setup(t, s, []string{"a1"})
	now := t0.Add(24 * time.Hour)
	expiring := map[string]time.Time{
		"c1": now.Add(-time.Hour),
		"c2": now.Add(-3 * time.Hour),
		"c3": now.Add(-2 * time.Hour),
		"c4": now, // expires at now, not before
		"c5": now.Add(time.Hour),
	}
	inTx(t, s, func(tx registry.Tx) error {
		for id, exp := range expiring {
			c := newChallenge(id, "a1")
			c.ExpireTime = exp
			if err := tx.CreateChallenge(ctx, c); err != nil {
				return err
			}
		}
		return nil
	})
	remove := func(limit int) int {
		t.Helper()
		var n int
		inTx(t, s, func(tx registry.Tx) error {
			var err error
			n, err = tx.DeleteExpiredChallenges(ctx, now, limit)
			return err
		})
		return n
	}
	left := func(want ...string) {
		t.Helper()
		var got []string
		for id := range expiring {
			_, err := s.GetChallenge(ctx, id)
			switch {
			case err == nil:
				got = append(got, id)
			case registry.KindOf(err) != registry.KindNotFound:
				t.Fatal(err)
			}
		}
		slices.Sort(got)
		wantEqual(t, "challenges left", got, want)
	}
	if n := remove(2); n != 2 {
		t.Fatalf("DeleteExpiredChallenges, limit 2 = %d, want 2", n)
	}
	left("c1", "c4", "c5")
	if n := remove(10); n != 1 {
		t.Fatalf("DeleteExpiredChallenges = %d, want 1", n)
	}
	left("c4", "c5")
	if n := remove(10); n != 0 {
		t.Fatalf("DeleteExpiredChallenges with none expired = %d, want 0", n)
	}
}

// claimKind is one kind of background work, for the tests that claim every kind alike.
type claimKind struct {
	name string
	// claim claims up to limit items due at now and returns their keys, the oldest due first.
	claim func(ctx context.Context, tx registry.Tx, now time.Time, limit int) ([]string, error)
	// finish does what the work does to an item claimed: it is not due again.
	finish func(ctx context.Context, tx registry.Tx, now time.Time, key string) error
}

var claimKinds = []claimKind{
	{
		name: "transfers",
		claim: func(ctx context.Context, tx registry.Tx, now time.Time, limit int) ([]string, error) {
			trs, err := tx.ClaimDueTransfers(ctx, now, limit)
			return transferIDs(trs), err
		},
		finish: func(ctx context.Context, tx registry.Tx, now time.Time, key string) error {
			tr, err := tx.GetTransfer(ctx, key)
			if err != nil {
				return err
			}
			tr.Status, tr.ActTime = registry.TransferServerApproved, now
			return tx.UpdateTransfer(ctx, tr, registry.TransferPending)
		},
	},
	{
		name: "purges",
		claim: func(ctx context.Context, tx registry.Tx, now time.Time, limit int) ([]string, error) {
			is, err := tx.ClaimDuePurges(ctx, now, limit)
			return identifierNames(is), err
		},
		finish: func(ctx context.Context, tx registry.Tx, now time.Time, key string) error {
			i, err := tx.GetIdentifier(ctx, key)
			if err != nil {
				return err
			}
			return tx.DeleteIdentifier(ctx, key, i.Version)
		},
	},
	{
		name: "openid checks",
		claim: func(ctx context.Context, tx registry.Tx, now time.Time, limit int) ([]string, error) {
			is, err := tx.ClaimOpenIDChecks(ctx, now, now.Add(time.Hour), limit)
			return identifierNames(is), err
		},
		finish: func(ctx context.Context, tx registry.Tx, now time.Time, key string) error {
			i, err := tx.GetIdentifier(ctx, key)
			if err != nil {
				return err
			}
			st := registry.OpenIDState{Status: dnsverify.OpenIDMatches, CheckTime: now, NextCheck: now.Add(24 * time.Hour)}
			_, err = tx.SetOpenIDState(ctx, key, i.IdentityID, st)
			return err
		},
	},
}

// seedClaims creates n items of each kind of work, due before now, and returns their keys in
// due order, by kind.
func seedClaims(t *testing.T, s registry.Store, now time.Time, n int) map[string][]string {
	t.Helper()
	setup(t, s, []string{"a1", "a2"})
	keys := make(map[string][]string)
	var trs []registry.Transfer
	var is []registry.Identifier
	for i := range n {
		due := now.Add(-time.Duration(n-i) * time.Minute)
		tr := newTransfer(fmt.Sprintf("tr_%03d", i), fmt.Sprintf("t%03d.example", i), "a1", "a2", registry.TransferPending, due)
		trs = append(trs, tr)
		keys["transfers"] = append(keys["transfers"], tr.ID)
		p := pendingDelete(fmt.Sprintf("p%03d.example", i), due)
		p.OpenID.NextCheck = now.Add(365 * 24 * time.Hour) // not due for a check
		c := dueCheck(fmt.Sprintf("c%03d.example", i), due)
		is = append(is, p, c)
		keys["purges"] = append(keys["purges"], p.Name)
		keys["openid checks"] = append(keys["openid checks"], c.Name)
	}
	createTransfers(t, s, trs...)
	createIdentifiers(t, s, is...)
	return keys
}

// testConcurrentClaims: workers claiming and finishing the same kind of work at once handle
// every item once.
func testConcurrentClaims(t *testing.T, s registry.Store) {
	ctx := t.Context()
	now := t0.Add(24 * time.Hour)
	const items, workers, batch = 30, 4, 3
	keys := seedClaims(t, s, now, items)
	for _, k := range claimKinds {
		var (
			mu      sync.Mutex
			claimed = make(map[string]int)
			errs    = make([]error, workers)
			wg      sync.WaitGroup
		)
		for w := range workers {
			wg.Go(func() {
				for {
					var got []string
					err := s.Tx(ctx, func(tx registry.Tx) error {
						var err error
						if got, err = k.claim(ctx, tx, now, batch); err != nil {
							return err
						}
						if len(got) > batch {
							return fmt.Errorf("claimed %d, limit %d", len(got), batch)
						}
						for _, key := range got {
							if err := k.finish(ctx, tx, now, key); err != nil {
								return fmt.Errorf("finishing %s: %w", key, err)
							}
						}
						return nil
					})
					if err != nil {
						errs[w] = err
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, key := range got {
						claimed[key]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		for w, err := range errs {
			if err != nil {
				t.Fatalf("%s: worker %d: %v", k.name, w, err)
			}
		}
		for _, key := range keys[k.name] {
			if claimed[key] != 1 {
				t.Errorf("%s: %s claimed %d times, want once", k.name, key, claimed[key])
			}
		}
		if len(claimed) != items {
			t.Errorf("%s: %d items claimed, want %d", k.name, len(claimed), items)
		}
	}
}

// testHeldClaims: while one transaction holds its claims, another claiming the same kind of
// work skips them and gets the next items due.
func testHeldClaims(t *testing.T, s registry.Store) {
	ctx := t.Context()
	now := t0.Add(24 * time.Hour)
	const items, batch = 6, 3
	keys := seedClaims(t, s, now, items)
	for _, k := range claimKinds {
		var (
			first, second []string
			firstErr      error
			claimed       = make(chan struct{})
			release       = make(chan struct{})
			held          sync.WaitGroup
		)
		signal := sync.OnceFunc(func() { close(claimed) })
		held.Go(func() {
			firstErr = s.Tx(ctx, func(tx registry.Tx) error {
				var err error
				if first, err = k.claim(ctx, tx, now, batch); err != nil {
					return err
				}
				signal()
				<-release
				return nil
			})
			signal()
		})
		<-claimed
		secondDone := make(chan error, 1)
		go func() {
			secondDone <- s.Tx(ctx, func(tx registry.Tx) error {
				var err error
				second, err = k.claim(ctx, tx, now, batch)
				return err
			})
		}()
		var err error
		select {
		case err = <-secondDone:
		case <-time.After(time.Minute):
			err = errors.New("the second claim waited for the first transaction")
		}
		close(release)
		held.Wait()
		if firstErr != nil {
			t.Fatalf("%s: first claim: %v", k.name, firstErr)
		}
		if err != nil {
			t.Fatalf("%s: second claim: %v", k.name, err)
		}
		wantEqual(t, k.name+": first claim", first, keys[k.name][:batch])
		wantEqual(t, k.name+": second claim, skipping the first's", second, keys[k.name][batch:])
	}
}

func testDeleteAckedEvents(t *testing.T, s registry.Store) {
	ctx := t.Context()
	setup(t, s, []string{"a1", "a2"})
	inTx(t, s, func(tx registry.Tx) error {
		for _, agentID := range []string{"a1", "a1", "a1", "a1", "a2", "a2"} {
			if _, err := tx.AppendEvent(ctx, newEvent(agentID, registry.EventIdentifierDeleted, "alice.example", t0)); err != nil {
				return err
			}
		}
		// a1's events 1–3 acknowledged at t0, a2's event 1 two hours later.
		if _, err := tx.AckEvents(ctx, "a1", []int64{1, 2, 3}, t0); err != nil {
			return err
		}
		_, err := tx.AckEvents(ctx, "a2", []int64{1}, t0.Add(2*time.Hour))
		return err
	})
	remove := func(limit int) int {
		t.Helper()
		var n int
		inTx(t, s, func(tx registry.Tx) error {
			var err error
			n, err = tx.DeleteAckedEvents(ctx, t0.Add(time.Hour), limit)
			return err
		})
		return n
	}
	if n := remove(2); n != 2 {
		t.Fatalf("DeleteAckedEvents(limit 2) = %d, want 2", n)
	}
	if n := remove(10); n != 1 {
		t.Fatalf("DeleteAckedEvents again = %d, want 1 (the third of a1's old acknowledged events)", n)
	}
	if n := remove(10); n != 0 {
		t.Fatalf("DeleteAckedEvents with nothing old left = %d, want 0", n)
	}
	ids := func(agentID string) []int64 {
		t.Helper()
		evs, err := s.ListEvents(ctx, agentID, 0, false, 100)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, e := range evs {
			out = append(out, e.ID)
		}
		return out
	}
	// Unacknowledged and recently acknowledged events stay.
	if got := ids("a1"); !slices.Equal(got, []int64{4}) {
		t.Fatalf("a1's events left: %v, want [4]", got)
	}
	if got := ids("a2"); !slices.Equal(got, []int64{1, 2}) {
		t.Fatalf("a2's events left: %v, want [1 2]", got)
	}
	// Numbering goes on from the last number, not from what is left.
	inTx(t, s, func(tx registry.Tx) error {
		id, err := tx.AppendEvent(ctx, newEvent("a1", registry.EventIdentifierRestored, "alice.example", t0))
		if err == nil && id != 5 {
			t.Errorf("next event of a1 = %d, want 5", id)
		}
		return err
	})
}
