package storetest

import (
	"testing"
	"time"

	"github.com/id4me/id4me-registry/registry"
)

// testLinkGenerations: the link generations of agents and identifiers are kept by every
// write and come back from every read, so that a credential link bound to them stays void
// once one has moved on.
func testLinkGenerations(t *testing.T, s registry.Store) {
	ctx := t.Context()
	a := newAgent("a1", "cc01")
	a.LinkGeneration = 3
	inTx(t, s, func(tx registry.Tx) error {
		if err := tx.CreateAgent(ctx, a); err != nil {
			return err
		}
		return tx.CreateIdentity(ctx, newIdentity("id1"))
	})
	wantAgent := func(what string, want registry.Agent) {
		t.Helper()
		got, err := s.GetAgent(ctx, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		wantEqual(t, what+": GetAgent", got, normAgent(want))
		byCert, err := s.FindAgentByCertSPKI(ctx, "cc01")
		if err != nil {
			t.Fatal(err)
		}
		wantEqual(t, what+": FindAgentByCertSPKI", byCert, normAgent(want))
		list, err := s.ListAgents(ctx, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		wantEqual(t, what+": ListAgents", list, []registry.Agent{normAgent(want)})
	}
	wantAgent("a new agent", a)
	// A suspension advances it.
	a.State, a.LinkGeneration, a.Version, a.UpdateTime = registry.AgentSuspended, 4, 2, t0.Add(time.Hour)
	inTx(t, s, func(tx registry.Tx) error { return tx.UpdateAgent(ctx, a) })
	wantAgent("after UpdateAgent", a)

	i := newIdentifier("alice.example", "a1", "id1")
	i.LinkGeneration = 7
	inTx(t, s, func(tx registry.Tx) error { return tx.CreateIdentifier(ctx, i) })
	wantIdentifier := func(what string, want registry.Identifier) {
		t.Helper()
		got, err := s.GetIdentifier(ctx, want.Name)
		if err != nil {
			t.Fatal(err)
		}
		wantEqual(t, what+": GetIdentifier", got, normIdentifier(want))
		list, err := s.ListIdentifiers(ctx, "a1", "", 10)
		if err != nil {
			t.Fatal(err)
		}
		wantEqual(t, what+": ListIdentifiers", list, []registry.Identifier{normIdentifier(want)})
	}
	wantIdentifier("a new identifier", i)
	// A delete advances it; the purge sweep reads it.
	i.Statuses = []registry.Status{registry.StatusPendingDelete}
	i.DeleteTime, i.PurgeTime = t0.Add(time.Hour), t0.Add(2*time.Hour)
	i.LinkGeneration, i.Version, i.UpdateTime = 8, 2, t0.Add(time.Hour)
	inTx(t, s, func(tx registry.Tx) error { return tx.UpdateIdentifier(ctx, i) })
	wantIdentifier("after UpdateIdentifier", i)
	inTx(t, s, func(tx registry.Tx) error {
		due, err := tx.ClaimDuePurges(ctx, i.PurgeTime, 10)
		wantEqual(t, "ClaimDuePurges", due, []registry.Identifier{normIdentifier(i)})
		return err
	})
}
