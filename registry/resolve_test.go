package registry_test

import (
	"testing"
	"time"

	"github.com/id4me/id4me-registry/registry"
)

// Resolution: what an identifier maps to for relying parties and the authority, and how soon
// a change is seen.

// TestResolve: an identifier resolves to its agent and the claims endpoint in effect, in any
// accepted form; on hold or pending delete it resolves to nothing.
func TestResolve(t *testing.T) {
	w := newWorld(t)
	a := w.newAgent("alpha")
	i := w.register(a, "Bücher.example.test")
	agent := w.agent(a)
	want := registry.Resolution{
		Identifier: "xn--bcher-kva.example.test", DNSName: "xn--bcher-kva.example.test", AgentID: a.ID,
		ClaimsEndpoint: agent.ClaimsEndpoint, AgentIssuer: agent.Issuer, IdentityID: i.IdentityID,
	}
	for _, in := range []string{"xn--bcher-kva.example.test", "BÜCHER.Example.Test.", "bücher.example.test"} {
		r, err := w.svc.Resolve(w.ctx, in)
		if err != nil || r.Identifier != want.Identifier || r.DNSName != want.DNSName || r.AgentID != want.AgentID ||
			r.ClaimsEndpoint != want.ClaimsEndpoint || r.AgentIssuer != want.AgentIssuer || r.IdentityID != want.IdentityID || len(r.Statuses) != 0 {
			t.Fatalf("Resolve(%q) = %+v, %v; want %+v", in, r, err, want)
		}
	}
	w.update(a, i.Name, "https://claims.alpha.agent.test/bücher", registry.StatusClientTransferProhibited)
	if r, err := w.svc.Resolve(w.ctx, i.Name); err != nil || r.ClaimsEndpoint != "https://claims.alpha.agent.test/bücher" || len(r.Statuses) != 1 {
		t.Fatalf("Resolve after an override = %+v, %v; want the override and the status", r, err)
	}
	refusals := []struct {
		name, in string
		kind     registry.Kind
		reason   string
	}{
		{"malformed", "not a name", registry.KindInvalidArgument, "IDENTIFIER_MALFORMED"},
		{"not registered", "nobody.example.test", registry.KindNotFound, "IDENTIFIER_NOT_FOUND"},
		{"an e-mail form's DNS name", aliceLabel + ".example.test", registry.KindNotFound, "IDENTIFIER_NOT_FOUND"},
	}
	w.register(a, "alice.smith+id4me@example.test")
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			_, err := w.svc.Resolve(w.ctx, tt.in)
			wantErr(t, err, tt.kind, tt.reason)
		})
	}
	// On hold, pending delete, or both: nothing; the hold is told first.
	w.serverStatus(i.Name, "abuse", registry.StatusServerHold)
	_, err := w.svc.Resolve(w.ctx, i.Name)
	wantErr(t, err, registry.KindNotFound, notResolvedOnHold)
	w.remove(a, i.Name)
	_, err = w.svc.Resolve(w.ctx, i.Name)
	wantErr(t, err, registry.KindNotFound, notResolvedOnHold)
	w.serverStatus(i.Name, "resolved")
	_, err = w.svc.Resolve(w.ctx, i.Name)
	wantErr(t, err, registry.KindNotFound, notResolvedPendingDelete)
}

// TestHolderIdentity: the authority checks a holder's password through the identifier's
// identity whatever its statuses, so that a wrong one reads alike for every identifier.
func TestHolderIdentity(t *testing.T) {
	w := newWorld(t)
	a := w.newAgent("alpha")
	i := w.register(a, alice)
	w.serverStatus(alice, "abuse", registry.StatusServerHold)
	w.remove(a, alice)
	name, identity, err := w.resolver.HolderIdentity(w.ctx, "ALICE.example.test.")
	if err != nil || name != alice || identity != i.IdentityID {
		t.Fatalf("HolderIdentity = %q, %q, %v; want %s and %s", name, identity, err, alice, i.IdentityID)
	}
	_, _, err = w.resolver.HolderIdentity(w.ctx, "nobody.example.test")
	wantErr(t, err, registry.KindNotFound, "IDENTIFIER_NOT_FOUND")
	_, _, err = w.resolver.HolderIdentity(w.ctx, "*.example.test")
	wantErr(t, err, registry.KindInvalidArgument, "IDENTIFIER_WILDCARD")
	if seed, err := w.resolver.SubjectSeed(w.ctx, identity); err != nil || seed != w.identity(identity).SubjectSeed {
		t.Fatalf("SubjectSeed = %q, %v", seed, err)
	}
	_, err = w.resolver.SubjectSeed(w.ctx, "id_nosuchidentity")
	wantErr(t, err, registry.KindNotFound, "IDENTITY_NOT_FOUND")
}

// TestResolveCache: resolutions are kept ResolveCacheTTL. A change made through the Service
// drops the cached answer at once, on every resolver it shares; one made by another instance
// sharing the database is seen when the TTL has passed.
func TestResolveCache(t *testing.T) {
	const ttl = 2 * time.Second // the default
	tests := []struct {
		name string
		// prepare, if set, prepares the world before alice.example.test is resolved.
		prepare func(w *transferWorld)
		// change changes alice.example.test (or its agent) through svc; the world is the
		// losing agent's.
		change func(w *transferWorld, svc *registry.Service)
		// resolves tells what alice.example.test resolves to after the change: the agent, or
		// the reason it resolves to nothing.
		agent  role
		reason string
	}{
		{name: "a claims endpoint set", agent: losing, change: func(w *transferWorld, svc *registry.Service) {
			_, err := svc.UpdateIdentifier(w.ctx, w.loser, registry.IdentifierUpdate{Identifier: alice, ClaimsEndpoint: "https://claims.loser.agent.test/new"})
			noErr(w.t, err)
		}},
		{name: "put on hold", reason: notResolvedOnHold, change: func(w *transferWorld, svc *registry.Service) {
			_, err := svc.SetServerStatus(w.ctx, operator, alice, []registry.Status{registry.StatusServerHold}, "", "")
			noErr(w.t, err)
		}},
		{name: "deleted", reason: notResolvedPendingDelete, change: func(w *transferWorld, svc *registry.Service) {
			_, err := svc.DeleteIdentifier(w.ctx, w.loser, alice, "")
			noErr(w.t, err)
		}},
		{name: "transferred", agent: gaining, change: func(w *transferWorld, svc *registry.Service) {
			c := w.validChallenge(w.gainer, alice, registry.PurposeTransfer)
			_, err := svc.RequestTransfer(w.ctx, w.gainer, c.ID, "")
			noErr(w.t, err)
		}},
		{name: "transferred at the deadline", agent: gaining, prepare: func(w *transferWorld) {
			c := w.validChallenge(w.gainer, alice, registry.PurposeTransfer)
			tr, err := w.instance(pending).RequestTransfer(w.ctx, w.gainer, c.ID, "")
			if err != nil {
				w.t.Fatal(err)
			}
			w.clock.Set(tr.ActTime)
		}, change: func(w *transferWorld, svc *registry.Service) {
			_, err := svc.SweepTransfers(w.ctx)
			noErr(w.t, err)
		}},
		{name: "the agent's claims endpoint changed", agent: losing, change: func(w *transferWorld, svc *registry.Service) {
			_, err := svc.UpdateAgent(w.ctx, operator, w.loser.ID, registry.AgentSpec{ClaimsEndpoint: "https://claims.loser.agent.test/new"}, []registry.AgentField{registry.AgentFieldClaimsEndpoint}, "")
			noErr(w.t, err)
		}},
	}
	for _, tt := range tests {
		check := func(t *testing.T, w *transferWorld) {
			t.Helper()
			r, err := w.svc.Resolve(w.ctx, alice)
			if tt.reason != "" {
				wantErr(t, err, registry.KindNotFound, tt.reason)
				return
			}
			i := w.mustIdentifier(alice)
			a := w.agent(w.actor(tt.agent))
			ep := i.ClaimsEndpoint
			if ep == "" {
				ep = a.ClaimsEndpoint
			}
			if err != nil || r.AgentID != a.ID || r.ClaimsEndpoint != ep {
				t.Fatalf("Resolve = %+v, %v; want %s with %s", r, err, a.ID, ep)
			}
		}
		setup := func(t *testing.T, opts ...option) (*transferWorld, registry.Resolution) {
			w := newTransferWorld(t, opts...)
			if tt.prepare != nil {
				tt.prepare(w)
			}
			return w, w.resolveNow(t)
		}
		t.Run(tt.name+", here", func(t *testing.T) {
			t.Parallel()
			w, _ := setup(t)
			tt.change(w, w.svc)
			check(t, w)
		})
		t.Run(tt.name+", on another instance", func(t *testing.T) {
			t.Parallel()
			w, before := setup(t)
			tt.change(w, w.instance())
			if r, err := w.svc.Resolve(w.ctx, alice); err != nil || r.AgentID != before.AgentID || r.ClaimsEndpoint != before.ClaimsEndpoint {
				t.Fatalf("within the TTL Resolve = %+v, %v; want the cached %+v", r, err, before)
			}
			w.clock.Advance(ttl)
			check(t, w)
		})
		t.Run(tt.name+", on another instance without a cache", func(t *testing.T) {
			t.Parallel()
			w, _ := setup(t, func(c *registry.Config) { c.ResolveCacheTTL = -1 })
			tt.change(w, w.instance())
			check(t, w)
		})
	}
}

// resolveNow resolves alice.example.test, which must resolve, filling the cache.
func (w *transferWorld) resolveNow(t *testing.T) registry.Resolution {
	t.Helper()
	r, err := w.svc.Resolve(w.ctx, alice)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	return r
}

// noErr fails unless err is nil.
func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestSharedResolver: the authority reads the mapping through the Resolver it shares with the
// Service, so a change through the Service reaches it at once; a resolver of its own would
// see it only after its TTL.
func TestSharedResolver(t *testing.T) {
	w := newWorld(t)
	a := w.newAgent("alpha")
	w.register(a, alice)
	own := registry.NewResolver(w.store, 0, w.clock.Now)
	for _, r := range []*registry.Resolver{w.resolver, own} {
		if _, err := r.Resolve(w.ctx, alice); err != nil {
			t.Fatal(err)
		}
	}
	w.serverStatus(alice, "abuse", registry.StatusServerHold)
	_, err := w.resolver.Resolve(w.ctx, alice)
	wantErr(t, err, registry.KindNotFound, notResolvedOnHold)
	if _, err := own.Resolve(w.ctx, alice); err != nil {
		t.Fatalf("a resolver of its own within its TTL: %v; want the cached answer", err)
	}
	w.clock.Advance(2 * time.Second)
	_, err = own.Resolve(w.ctx, alice)
	wantErr(t, err, registry.KindNotFound, notResolvedOnHold)
}
