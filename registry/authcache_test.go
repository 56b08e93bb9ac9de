package registry_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/registry"
	"github.com/id4me/id4me-registry/sqlstore"
)

// Two instances share one database: a revocation made on one takes effect on the other
// within AuthCacheTTL, and at once on the one that made it.
func TestAuthCacheAcrossInstances(t *testing.T) {
	ctx := context.Background()
	store, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	now := time.Now()
	clock := func() time.Time { return now }
	newInstance := func() *registry.Service {
		s, err := registry.New(registry.Config{Store: store, Now: clock, AuthCacheTTL: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := newInstance(), newInstance()
	agent, err := a.CreateAgent(ctx, registry.System, registry.AgentSpec{
		DisplayName: "alpha", ClaimsEndpoint: "https://alpha.test/userinfo", Issuer: "https://alpha.test",
		AccountKeyJWK: `{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}`,
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, bearer, err := a.CreateAgentToken(ctx, registry.System, agent.ID, "t")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*registry.Service{a, b} {
		if actor, err := s.AuthenticateBearer(ctx, bearer); err != nil || actor.ID != agent.ID {
			t.Fatalf("authenticate: %v, %v", actor, err)
		}
	}
	// A wrong secret is refused even while the credential is cached.
	if _, err := b.AuthenticateBearer(ctx, tok.ID+".wrong"); registry.KindOf(err) != registry.KindUnauthenticated {
		t.Fatalf("wrong secret with a cached credential: %v", err)
	}
	if _, err := a.RevokeAgentToken(ctx, registry.System, agent.ID, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AuthenticateBearer(ctx, bearer); registry.KindOf(err) != registry.KindUnauthenticated {
		t.Fatalf("revoking instance still accepts the token: %v", err)
	}
	if _, err := b.AuthenticateBearer(ctx, bearer); err != nil {
		t.Fatalf("other instance within the TTL: %v (it may keep its cached answer)", err)
	}
	now = now.Add(2 * time.Second)
	if _, err := b.AuthenticateBearer(ctx, bearer); registry.KindOf(err) != registry.KindUnauthenticated {
		t.Fatalf("other instance after the TTL still accepts the revoked token: %v", err)
	}
}
