package registry_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/id4me/id4me-registry/registry"
)

// Credential links: the registry asks the authority for them on behalf of the sponsoring
// agent, and binds each to the state it was made in, so that a transfer, a delete, a hold or
// a suspension voids it for good.

// TestCreateCredentialLink: who may ask for a credential link, when, and what the authority
// is asked.
func TestCreateCredentialLink(t *testing.T) {
	w := newWorld(t)
	alpha, beta := w.newAgent("alpha"), w.newAgent("beta")
	carol := w.register(alpha, "carol.example.test")

	link, err := w.svc.CreateCredentialLink(w.ctx, alpha, "Carol.Example.Test.", registry.CredentialLinkReset)
	if err != nil {
		t.Fatal(err)
	}
	if link.Identifier != "carol.example.test" || link.Purpose != registry.CredentialLinkReset || link.URL == "" {
		t.Fatalf("link %+v", link)
	}
	req := w.links.last(t)
	want := registry.CredentialLinkBinding{AgentID: alpha.ID, IdentifierGeneration: 0, AgentGeneration: 0}
	if req.IdentityID != carol.IdentityID || req.Identifier != "carol.example.test" || req.Purpose != registry.CredentialLinkReset || req.CredentialLinkBinding != want {
		t.Fatalf("the authority was asked %+v, want a reset link of carol's identity bound to %+v", req, want)
	}
	// The registry's record of the link is in the journal, without its secret.
	j := w.journal("identifier", "carol.example.test")
	last := j[len(j)-1]
	if last.Action != "credential_link.create" || last.Actor != "agent:"+alpha.ID || !strings.Contains(last.After, carol.IdentityID) || strings.Contains(last.After, "secret") {
		t.Fatalf("last journal entry %+v, want the link's record without its URL", last)
	}

	refusals := []struct {
		name       string
		actor      registry.Actor
		identifier string
		purpose    registry.CredentialLinkPurpose
		kind       registry.Kind
		reason     string
	}{
		{"another agent's identifier", beta, "carol.example.test", registry.CredentialLinkReset, registry.KindNotFound, "IDENTIFIER_NOT_FOUND"},
		{"no purpose", alpha, "carol.example.test", "", registry.KindInvalidArgument, "PURPOSE_REQUIRED"},
		{"an unknown purpose", alpha, "carol.example.test", "login", registry.KindInvalidArgument, "PURPOSE_REQUIRED"},
		{"a malformed identifier", alpha, "not a name", registry.CredentialLinkSetup, registry.KindInvalidArgument, "IDENTIFIER_MALFORMED"},
		{"an identifier not registered", alpha, "nobody.example.test", registry.CredentialLinkSetup, registry.KindNotFound, "IDENTIFIER_NOT_FOUND"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			before := len(w.links.made)
			_, err := w.svc.CreateCredentialLink(w.ctx, tt.actor, tt.identifier, tt.purpose)
			wantErr(t, err, tt.kind, tt.reason)
			if len(w.links.made) != before {
				t.Fatal("the authority was asked for a link")
			}
		})
	}

	t.Run("an operator's, for a support case", func(t *testing.T) {
		for _, reason := range []string{"", "  "} {
			before := len(w.links.made)
			_, err := w.svc.CreateCredentialLinkWithReason(w.ctx, operator, "carol.example.test", registry.CredentialLinkReset, reason)
			wantErr(t, err, registry.KindInvalidArgument, "REASON_REQUIRED")
			if len(w.links.made) != before {
				t.Fatal("the authority was asked for a link without a reason")
			}
		}
		_, err := w.svc.CreateCredentialLinkWithReason(w.ctx, operator, "carol.example.test", registry.CredentialLinkReset, strings.Repeat("x", 501))
		wantErr(t, err, registry.KindInvalidArgument, "REASON_INVALID")
		if _, err := w.svc.CreateCredentialLinkWithReason(w.ctx, operator, "carol.example.test", registry.CredentialLinkReset, "case 17"); err != nil {
			t.Fatal(err)
		}
		// Bound to the sponsoring agent, as the agent's own links are.
		if req := w.links.last(t); req.AgentID != alpha.ID || req.IdentityID != carol.IdentityID {
			t.Fatalf("the authority was asked %+v, want a link bound to alpha", req)
		}
		j := w.journal("identifier", "carol.example.test")
		if last := j[len(j)-1]; last.Action != "credential_link.create" || last.Actor != "operator:op_test" || !strings.Contains(last.After, `"reason":"case 17"`) {
			t.Fatalf("last journal entry %+v, want the operator's link with its reason", last)
		}
	})

	t.Run("without an authority", func(t *testing.T) {
		_, err := w.instance(func(c *registry.Config) { c.CredentialLinks = nil }).CreateCredentialLink(w.ctx, alpha, "carol.example.test", registry.CredentialLinkSetup)
		wantErr(t, err, registry.KindUnimplemented, "NO_AUTHORITY")
	})
	t.Run("the authority fails", func(t *testing.T) {
		failure := errors.New("authority store down")
		w.links.err = failure
		defer func() { w.links.err = nil }()
		journaled := len(w.journal("identifier", "carol.example.test"))
		_, err := w.svc.CreateCredentialLink(w.ctx, alpha, "carol.example.test", registry.CredentialLinkSetup)
		if !errors.Is(err, failure) {
			t.Fatalf("CreateCredentialLink = %v, want the authority's failure", err)
		}
		if n := len(w.journal("identifier", "carol.example.test")); n != journaled {
			t.Fatalf("a link not made was journaled")
		}
	})
}

// TestCredentialLinkRefusedWhenNoOneCanLogIn: an identifier on hold or pending delete gets no
// link (its holder cannot log in), nor does one whose agent is suspended.
func TestCredentialLinkRefusedWhenNoOneCanLogIn(t *testing.T) {
	tests := []struct {
		name   string
		make   func(w *world, a registry.Actor)
		reason string
	}{
		{"on hold", func(w *world, _ registry.Actor) { w.serverStatus(alice, "abuse", registry.StatusServerHold) }, "IDENTIFIER_ON_HOLD"},
		{"pending delete", func(w *world, a registry.Actor) { w.remove(a, alice) }, "IDENTIFIER_PENDING_DELETE"},
		{"on hold and pending delete", func(w *world, a registry.Actor) {
			w.serverStatus(alice, "abuse", registry.StatusServerHold)
			w.remove(a, alice)
		}, "IDENTIFIER_PENDING_DELETE"},
		{"sponsor suspended", func(w *world, a registry.Actor) { w.setAgentState(a, registry.AgentSuspended) }, "SPONSOR_SUSPENDED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			a := w.newAgent("alpha")
			i := w.register(a, alice)
			tt.make(w, a)
			_, err := w.svc.CreateCredentialLink(w.ctx, a, alice, registry.CredentialLinkReset)
			wantErr(t, err, registry.KindFailedPrecondition, tt.reason)
			_, err = w.resolver.CredentialLinkBinding(w.ctx, alice, i.IdentityID)
			wantErr(t, err, registry.KindFailedPrecondition, tt.reason)
			if len(w.links.made) != 0 {
				t.Fatal("the authority was asked for a link")
			}
		})
	}
}

// TestCredentialLinkVoiding: a link is honoured while the binding the registry reads now is the
// one it was made with. A transfer, a delete, a hold or a suspension changes it for good, even
// once undone; other changes leave it alone; and a change to one identifier voids no link of
// another.
func TestCredentialLinkVoiding(t *testing.T) {
	tests := []struct {
		name string
		opts []option
		// change changes the world after the link of alice.example.test was made.
		change func(w *transferWorld)
		// void: the link is void afterwards; reason: how the binding is refused now, if it is.
		void   bool
		kind   registry.Kind
		reason string
	}{
		{name: "nothing", change: func(*transferWorld) {}},
		{name: "a new claims endpoint and client statuses", change: func(w *transferWorld) {
			w.update(w.loser, alice, "https://claims.loser.agent.test/alice", registry.StatusClientTransferProhibited)
		}},
		{name: "server statuses other than hold", change: func(w *transferWorld) {
			w.serverStatus(alice, "dispute", registry.StatusServerTransferProhibited, registry.StatusServerDeleteProhibited, registry.StatusServerUpdateProhibited)
		}},
		{name: "a transfer requested and rejected", opts: []option{pending}, change: func(w *transferWorld) {
			w.mustRequest()
			if err := w.reject(w.loser); err != nil {
				w.t.Fatal(err)
			}
		}},
		{name: "the agent renamed", change: func(w *transferWorld) {
			if _, err := w.svc.UpdateAgent(w.ctx, operator, w.loser.ID, registry.AgentSpec{DisplayName: "Loser"}, []registry.AgentField{registry.AgentFieldDisplayName}, ""); err != nil {
				w.t.Fatal(err)
			}
		}},
		{name: "another identifier deleted and put on hold", change: func(w *transferWorld) {
			w.register(w.loser, "bob.example.test")
			w.serverStatus("bob.example.test", "abuse", registry.StatusServerHold)
			w.remove(w.loser, "bob.example.test")
		}},
		{name: "another agent suspended", change: func(w *transferWorld) { w.setAgentState(w.other, registry.AgentSuspended) }},
		{name: "transferred", void: true, change: func(w *transferWorld) { w.mustRequest() }},
		{name: "transferred and back", void: true, change: func(w *transferWorld) {
			w.mustRequest()
			w.requestTransfer(w.loser, alice)
		}},
		{name: "a transfer pending", opts: []option{pending}, change: func(w *transferWorld) { w.mustRequest() }},
		{name: "a pending transfer approved", opts: []option{pending}, void: true, change: func(w *transferWorld) {
			w.mustRequest()
			if err := w.approve(w.loser); err != nil {
				w.t.Fatal(err)
			}
		}},
		{name: "a pending transfer approved by the registry", opts: []option{pending}, void: true, change: func(w *transferWorld) {
			w.mustRequest()
			w.clock.Set(w.transfer.ActTime)
			w.sweepTransfers(1)
		}},
		{name: "deleted", void: true, kind: registry.KindFailedPrecondition, reason: "IDENTIFIER_PENDING_DELETE", change: func(w *transferWorld) {
			w.remove(w.loser, alice)
		}},
		{name: "deleted and restored", void: true, change: func(w *transferWorld) {
			w.remove(w.loser, alice)
			if err := w.restore(w.loser); err != nil {
				w.t.Fatal(err)
			}
		}},
		{name: "deleted and purged", void: true, kind: registry.KindNotFound, reason: "IDENTIFIER_NOT_FOUND", change: func(w *transferWorld) {
			w.clock.Set(w.remove(w.loser, alice).PurgeTime)
			w.sweepPurges(1)
		}},
		{name: "purged and registered again", void: true, kind: registry.KindNotFound, reason: "IDENTIFIER_NOT_FOUND", change: func(w *transferWorld) {
			w.clock.Set(w.remove(w.loser, alice).PurgeTime)
			w.sweepPurges(1)
			w.register(w.loser, alice)
		}},
		{name: "put on hold", void: true, kind: registry.KindFailedPrecondition, reason: "IDENTIFIER_ON_HOLD", change: func(w *transferWorld) {
			w.serverStatus(alice, "abuse", registry.StatusServerHold)
		}},
		{name: "put on hold and released", void: true, change: func(w *transferWorld) {
			w.serverStatus(alice, "abuse", registry.StatusServerHold)
			w.serverStatus(alice, "resolved")
		}},
		{name: "the sponsor suspended", void: true, kind: registry.KindFailedPrecondition, reason: "SPONSOR_SUSPENDED", change: func(w *transferWorld) {
			w.setAgentState(w.loser, registry.AgentSuspended)
		}},
		{name: "the sponsor suspended and resumed", void: true, change: func(w *transferWorld) {
			w.setAgentState(w.loser, registry.AgentSuspended)
			w.setAgentState(w.loser, registry.AgentActive)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newTransferWorld(t, tt.opts...)
			if _, err := w.svc.CreateCredentialLink(w.ctx, w.loser, alice, registry.CredentialLinkSetup); err != nil {
				t.Fatal(err)
			}
			made := w.links.last(t)
			tt.change(w)
			now, err := w.resolver.CredentialLinkBinding(w.ctx, alice, w.identityID)
			if tt.reason != "" {
				wantErr(t, err, tt.kind, tt.reason)
				return
			}
			if err != nil {
				t.Fatalf("CredentialLinkBinding: %v", err)
			}
			if void := now != made.CredentialLinkBinding; void != tt.void {
				t.Fatalf("the binding went from %+v to %+v: void %t, want %t", made.CredentialLinkBinding, now, void, tt.void)
			}
			// A link made now is bound to the state now.
			if _, err := w.svc.CreateCredentialLink(w.ctx, w.actor(sponsorOf(w)), alice, registry.CredentialLinkReset); err != nil {
				t.Fatal(err)
			}
			if fresh := w.links.last(t).CredentialLinkBinding; fresh != now {
				t.Fatalf("a link made now is bound to %+v, want %+v", fresh, now)
			}
		})
	}
}

// sponsorOf returns the role that sponsors alice.example.test now.
func sponsorOf(w *transferWorld) role {
	if w.mustIdentifier(alice).AgentID == w.gainer.ID {
		return gaining
	}
	return losing
}

// TestCredentialLinkBindingReadsTheStore: the binding is read from the store, not the resolve
// cache, so a change made by another instance counts at once.
func TestCredentialLinkBindingReadsTheStore(t *testing.T) {
	w := newWorld(t)
	a := w.newAgent("alpha")
	i := w.register(a, alice)
	if _, err := w.svc.Resolve(w.ctx, alice); err != nil {
		t.Fatal(err)
	}
	before, err := w.resolver.CredentialLinkBinding(w.ctx, alice, i.IdentityID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.instance().SetServerStatus(w.ctx, operator, alice, []registry.Status{registry.StatusServerHold}, "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.Resolve(w.ctx, alice); err != nil {
		t.Fatalf("within the cache TTL this instance still resolves: %v", err)
	}
	_, err = w.resolver.CredentialLinkBinding(w.ctx, alice, i.IdentityID)
	wantErr(t, err, registry.KindFailedPrecondition, "IDENTIFIER_ON_HOLD")
	if _, err := w.instance().SetServerStatus(w.ctx, operator, alice, nil, "", ""); err != nil {
		t.Fatal(err)
	}
	if after, err := w.resolver.CredentialLinkBinding(w.ctx, alice, i.IdentityID); err != nil || after == before {
		t.Fatalf("after the hold ended elsewhere the binding is %+v, %v; want a new generation", after, err)
	}
	_, err = w.resolver.CredentialLinkBinding(w.ctx, alice, "id_another")
	wantErr(t, err, registry.KindNotFound, "IDENTIFIER_NOT_FOUND")
}
