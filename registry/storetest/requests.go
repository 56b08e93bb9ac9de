package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/registry"
)

func newRequestOutcome(agentID, requestID string, at time.Time) registry.RequestOutcome {
	return registry.RequestOutcome{
		AgentID: agentID, RequestID: requestID, Method: registry.MethodRegisterIdentifier,
		RequestHash: "hash-" + requestID, Resource: requestID + ".example", IdentityID: "identity-" + requestID, CreateTime: at,
	}
}

// testRequestOutcomes: an outcome is read back as written, per agent and request_id; a second
// one for the same pair is refused, and one written in a transaction that rolls back is gone.
func testRequestOutcomes(t *testing.T, s registry.Store) {
	ctx := t.Context()
	setup(t, s, []string{"a1", "a2"})
	_, err := s.GetRequestOutcome(ctx, "a1", "r1")
	wantErr(t, err, registry.KindNotFound, "REQUEST_OUTCOME_NOT_FOUND")

	first := newRequestOutcome("a1", "r1", t0)
	transfer := registry.RequestOutcome{AgentID: "a1", RequestID: "r2", Method: registry.MethodRequestTransfer, RequestHash: "h", Resource: "tr_1", CreateTime: t0}
	sameIDOtherAgent := newRequestOutcome("a2", "r1", t0.Add(time.Second))
	sameIDOtherAgent.Resource = "other.example"
	inTx(t, s, func(tx registry.Tx) error {
		for _, o := range []registry.RequestOutcome{first, transfer, sameIDOtherAgent} {
			if err := tx.CreateRequestOutcome(ctx, o); err != nil {
				return err
			}
		}
		return nil
	})
	for _, want := range []registry.RequestOutcome{first, transfer, sameIDOtherAgent} {
		got, err := s.GetRequestOutcome(ctx, want.AgentID, want.RequestID)
		if err != nil {
			t.Fatal(err)
		}
		want.CreateTime = norm(want.CreateTime)
		wantEqual(t, "GetRequestOutcome", got, want)
	}

	again := first
	again.Resource, again.RequestHash = "again.example", "another"
	err = s.Tx(ctx, func(tx registry.Tx) error { return tx.CreateRequestOutcome(ctx, again) })
	wantErr(t, err, registry.KindAlreadyExists, "OBJECT_EXISTS")
	if got, err := s.GetRequestOutcome(ctx, "a1", "r1"); err != nil || got.Resource != first.Resource {
		t.Fatalf("after a refused second outcome: %+v, %v; want the first", got, err)
	}

	errRollback := errors.New("roll back")
	err = s.Tx(ctx, func(tx registry.Tx) error {
		if err := tx.CreateRequestOutcome(ctx, newRequestOutcome("a1", "r3", t0)); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("Tx = %v, want the rollback", err)
	}
	_, err = s.GetRequestOutcome(ctx, "a1", "r3")
	wantErr(t, err, registry.KindNotFound, "REQUEST_OUTCOME_NOT_FOUND")
}

// testDeleteRequestOutcomes: the sweep deletes the outcomes created before a time, oldest
// first, up to a limit.
func testDeleteRequestOutcomes(t *testing.T, s registry.Store) {
	ctx := t.Context()
	setup(t, s, []string{"a1", "a2"})
	now := t0.Add(24 * time.Hour)
	created := map[[2]string]time.Time{
		{"a1", "old1"}: now.Add(-3 * time.Hour),
		{"a2", "old2"}: now.Add(-2 * time.Hour),
		{"a1", "old3"}: now.Add(-time.Hour),
		{"a2", "now"}:  now, // created at now, not before
		{"a1", "new"}:  now.Add(time.Hour),
	}
	inTx(t, s, func(tx registry.Tx) error {
		for k, at := range created {
			if err := tx.CreateRequestOutcome(ctx, newRequestOutcome(k[0], k[1], at)); err != nil {
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
			n, err = tx.DeleteRequestOutcomes(ctx, now, limit)
			return err
		})
		return n
	}
	left := func(want ...string) {
		t.Helper()
		var got []string
		for k := range created {
			_, err := s.GetRequestOutcome(ctx, k[0], k[1])
			switch {
			case err == nil:
				got = append(got, k[1])
			case registry.KindOf(err) != registry.KindNotFound:
				t.Fatal(err)
			}
		}
		slices.Sort(got)
		wantEqual(t, "request outcomes left", got, want)
	}
	if n := remove(2); n != 2 {
		t.Fatalf("DeleteRequestOutcomes, limit 2 = %d, want 2", n)
	}
	left("new", "now", "old3")
	if n := remove(10); n != 1 {
		t.Fatalf("DeleteRequestOutcomes = %d, want 1", n)
	}
	left("new", "now")
	if n := remove(10); n != 0 {
		t.Fatalf("DeleteRequestOutcomes with none old = %d, want 0", n)
	}
}
