package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/registry"
)

func credentialIDs(cs []registry.Credential) []string {
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	return ids
}

// testLockOperatorCredentials: the operator credentials not revoked, oldest first; and a
// transaction that locks them while another holds them sees what the other revoked.
func testLockOperatorCredentials(t *testing.T, s registry.Store) {
	ctx := t.Context()
	setup(t, s, []string{"a1"})
	lock := func(ctx context.Context, s registry.Store) []string {
		t.Helper()
		var ids []string
		inTx(t, s, func(tx registry.Tx) error {
			cs, err := tx.LockOperatorCredentials(ctx)
			ids = credentialIDs(cs)
			return err
		})
		return ids
	}
	if got := lock(ctx, s); len(got) != 0 {
		t.Fatalf("LockOperatorCredentials with none = %v", got)
	}
	inTx(t, s, func(tx registry.Tx) error {
		for _, c := range []registry.Credential{
			{ID: "op-b", SecretHash: []byte{1}, CreateTime: t0.Add(time.Second)},
			{ID: "op-a", SecretHash: []byte{2}, CreateTime: t0},
			{ID: "op-revoked", SecretHash: []byte{3}, CreateTime: t0, RevokeTime: t0.Add(time.Minute)},
			{ID: "tok-1", AgentID: "a1", SecretHash: []byte{4}, CreateTime: t0},
		} {
			if err := tx.CreateCredential(ctx, c); err != nil {
				return err
			}
		}
		return nil
	})
	wantEqual(t, "LockOperatorCredentials", lock(ctx, s), []string{"op-a", "op-b"})

	var (
		held     sync.WaitGroup
		heldErr  error
		locked   = make(chan struct{})
		release  = make(chan struct{})
		signal   = sync.OnceFunc(func() { close(locked) })
		second   []string
		secondOK = make(chan error, 1)
	)
	held.Go(func() {
		heldErr = s.Tx(ctx, func(tx registry.Tx) error {
			if _, err := tx.LockOperatorCredentials(ctx); err != nil {
				return err
			}
			if err := tx.RevokeCredential(ctx, "op-a", t0.Add(time.Hour)); err != nil {
				return err
			}
			signal()
			<-release
			return nil
		})
		signal()
	})
	<-locked
	go func() {
		secondOK <- s.Tx(ctx, func(tx registry.Tx) error {
			cs, err := tx.LockOperatorCredentials(ctx)
			second = credentialIDs(cs)
			return err
		})
	}()
	close(release)
	held.Wait()
	if heldErr != nil {
		t.Fatalf("first transaction: %v", heldErr)
	}
	if err := <-secondOK; err != nil {
		t.Fatalf("second transaction: %v", err)
	}
	wantEqual(t, "LockOperatorCredentials while another transaction revoked op-a", second, []string{"op-b"})
}
