package registry_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/id4me/id4me-registry/registry"
)

// Who may set which status, and what each status forbids. Client statuses are the sponsoring
// agent's (UpdateIdentifier), server statuses the operators' (SetServerStatus), and
// pendingDelete and pendingTransfer the lifecycle's.

// TestUpdateIdentifierRules: what an agent's UpdateIdentifier changes, from which statuses, and
// what it refuses.
func TestUpdateIdentifierRules(t *testing.T) {
	const (
		cTP = registry.StatusClientTransferProhibited
		cDP = registry.StatusClientDeleteProhibited
		cUP = registry.StatusClientUpdateProhibited
		sH  = registry.StatusServerHold
		sUP = registry.StatusServerUpdateProhibited
		pD  = registry.StatusPendingDelete
		pT  = registry.StatusPendingTransfer
	)
	const endpoint = "https://claims.alpha.agent.test/alice"
	both := []registry.IdentifierField{registry.IdentifierFieldClaimsEndpoint, registry.IdentifierFieldStatuses}
	onlyStatuses := []registry.IdentifierField{registry.IdentifierFieldStatuses}
	onlyEndpoint := []registry.IdentifierField{registry.IdentifierFieldClaimsEndpoint}
	tests := []struct {
		name string
		// endpoint and statuses are what alice.example.test has before the update, set by
		// its agent; server the server statuses an operator set.
		endpoint string
		statuses []registry.Status
		server   []registry.Status
		update   registry.IdentifierUpdate
		// kind and reason refuse the update; without a reason it succeeds, leaving
		// wantEndpoint and wantStatuses.
		kind         registry.Kind
		reason       string
		wantEndpoint string
		wantStatuses []registry.Status
		// changed: the update made a new version (and a journal entry).
		changed bool
	}{
		{
			name:         "sets client statuses",
			update:       registry.IdentifierUpdate{Statuses: []registry.Status{cTP, cDP}, Fields: onlyStatuses},
			wantStatuses: []registry.Status{cDP, cTP}, changed: true,
		},
		{
			name: "listing a status twice sets it once", update: registry.IdentifierUpdate{Statuses: []registry.Status{cTP, cTP}, Fields: onlyStatuses},
			wantStatuses: []registry.Status{cTP}, changed: true,
		},
		{
			name: "clears the client statuses not listed", statuses: []registry.Status{cTP, cDP},
			update:       registry.IdentifierUpdate{Statuses: []registry.Status{cDP}, Fields: onlyStatuses},
			wantStatuses: []registry.Status{cDP}, changed: true,
		},
		{
			name: "sets the claims endpoint override", update: registry.IdentifierUpdate{ClaimsEndpoint: endpoint, Fields: onlyEndpoint},
			wantEndpoint: endpoint, changed: true,
		},
		{
			name: "an empty claims endpoint clears the override", endpoint: endpoint,
			update: registry.IdentifierUpdate{Fields: onlyEndpoint}, changed: true,
		},
		{
			name: "statuses alone leave the endpoint", endpoint: endpoint, update: registry.IdentifierUpdate{Statuses: []registry.Status{cTP}, Fields: onlyStatuses},
			wantEndpoint: endpoint, wantStatuses: []registry.Status{cTP}, changed: true,
		},
		{
			name: "the endpoint alone leaves the statuses", statuses: []registry.Status{cTP}, update: registry.IdentifierUpdate{ClaimsEndpoint: endpoint, Fields: onlyEndpoint},
			wantEndpoint: endpoint, wantStatuses: []registry.Status{cTP}, changed: true,
		},
		{
			name: "no fields means both", endpoint: endpoint, statuses: []registry.Status{cTP},
			update: registry.IdentifierUpdate{}, changed: true,
		},
		{
			name: "asking for what is in force changes nothing", endpoint: endpoint, statuses: []registry.Status{cTP},
			update:       registry.IdentifierUpdate{ClaimsEndpoint: endpoint, Statuses: []registry.Status{cTP}, Fields: both},
			wantEndpoint: endpoint, wantStatuses: []registry.Status{cTP},
		},
		{
			name: "a server status in force may be listed and stays", server: []registry.Status{registry.StatusServerDeleteProhibited},
			update:       registry.IdentifierUpdate{Statuses: []registry.Status{registry.StatusServerDeleteProhibited, cTP}, Fields: onlyStatuses},
			wantStatuses: []registry.Status{registry.StatusServerDeleteProhibited, cTP}, changed: true,
		},
		{
			name: "a server status in force stays when not listed", server: []registry.Status{registry.StatusServerDeleteProhibited},
			update:       registry.IdentifierUpdate{Statuses: []registry.Status{cTP}, Fields: onlyStatuses},
			wantStatuses: []registry.Status{registry.StatusServerDeleteProhibited, cTP}, changed: true,
		},
		{
			name: "a server status not in force is the registry's", update: registry.IdentifierUpdate{Statuses: []registry.Status{sH}, Fields: onlyStatuses},
			kind: registry.KindPermissionDenied, reason: "STATUS_NOT_CLIENT_SETTABLE",
		},
		{
			name: "pendingDelete is the lifecycle's", update: registry.IdentifierUpdate{Statuses: []registry.Status{pD}, Fields: onlyStatuses},
			kind: registry.KindPermissionDenied, reason: "STATUS_NOT_CLIENT_SETTABLE",
		},
		{
			name: "pendingTransfer is the lifecycle's", update: registry.IdentifierUpdate{Statuses: []registry.Status{pT}, Fields: onlyStatuses},
			kind: registry.KindPermissionDenied, reason: "STATUS_NOT_CLIENT_SETTABLE",
		},
		{
			name: "an unknown status", update: registry.IdentifierUpdate{Statuses: []registry.Status{"clientRenewProhibited"}, Fields: onlyStatuses},
			kind: registry.KindInvalidArgument, reason: "STATUS_UNKNOWN",
		},
		{
			name: "an unknown field", update: registry.IdentifierUpdate{Fields: []registry.IdentifierField{"name"}},
			kind: registry.KindInvalidArgument, reason: "UPDATE_MASK_INVALID",
		},
		{
			name: "a claims endpoint over http", update: registry.IdentifierUpdate{ClaimsEndpoint: "http://alpha.agent.test/alice", Fields: onlyEndpoint},
			kind: registry.KindInvalidArgument, reason: "CLAIMS_ENDPOINT_NOT_HTTPS",
		},
		{
			name: "clientUpdateProhibited refuses a new endpoint", statuses: []registry.Status{cUP},
			update: registry.IdentifierUpdate{ClaimsEndpoint: endpoint, Fields: onlyEndpoint},
			kind:   registry.KindFailedPrecondition, reason: "IDENTIFIER_UPDATE_PROHIBITED",
		},
		{
			name: "clientUpdateProhibited refuses other statuses", statuses: []registry.Status{cUP},
			update: registry.IdentifierUpdate{Statuses: []registry.Status{cUP, cDP}, Fields: onlyStatuses},
			kind:   registry.KindFailedPrecondition, reason: "IDENTIFIER_UPDATE_PROHIBITED",
		},
		{
			name: "clientUpdateProhibited refuses being removed with another", statuses: []registry.Status{cUP, cDP},
			update: registry.IdentifierUpdate{Fields: onlyStatuses},
			kind:   registry.KindFailedPrecondition, reason: "IDENTIFIER_UPDATE_PROHIBITED",
		},
		{
			name: "clientUpdateProhibited can be removed on its own", statuses: []registry.Status{cUP, cDP},
			update:       registry.IdentifierUpdate{Statuses: []registry.Status{cDP}, Fields: onlyStatuses},
			wantStatuses: []registry.Status{cDP}, changed: true,
		},
		{
			name: "clientUpdateProhibited can be removed with the endpoint unchanged", endpoint: endpoint, statuses: []registry.Status{cUP},
			update:       registry.IdentifierUpdate{ClaimsEndpoint: endpoint, Fields: both},
			wantEndpoint: endpoint, changed: true,
		},
		{
			name: "clientUpdateProhibited allows asking for what is in force", statuses: []registry.Status{cUP},
			update:       registry.IdentifierUpdate{Statuses: []registry.Status{cUP}, Fields: onlyStatuses},
			wantStatuses: []registry.Status{cUP},
		},
		{
			name: "serverUpdateProhibited refuses everything", server: []registry.Status{sUP},
			update: registry.IdentifierUpdate{Statuses: []registry.Status{sUP}, Fields: onlyStatuses},
			kind:   registry.KindFailedPrecondition, reason: "IDENTIFIER_UPDATE_PROHIBITED",
		},
		{
			name: "serverHold allows updates", server: []registry.Status{sH},
			update:       registry.IdentifierUpdate{Statuses: []registry.Status{sH, cTP}, Fields: onlyStatuses},
			wantStatuses: []registry.Status{sH, cTP}, changed: true,
		},
		{
			name: "a stale etag", update: registry.IdentifierUpdate{ClaimsEndpoint: endpoint, Fields: onlyEndpoint, Etag: "0123456789abcdef01234567"},
			kind: registry.KindAborted, reason: "ETAG_MISMATCH",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			a := w.newAgent("alpha")
			w.register(a, alice)
			if tt.endpoint != "" || len(tt.statuses) > 0 {
				w.update(a, alice, tt.endpoint, tt.statuses...)
			}
			if len(tt.server) > 0 {
				w.serverStatus(alice, "test", tt.server...)
			}
			before := w.mustIdentifier(alice)
			wantBefore := slices.Concat(tt.statuses, tt.server)
			wantStatuses(t, "before", before.Statuses, wantBefore...)
			journaled := len(w.journal("identifier", alice))
			u := tt.update
			u.Identifier = alice
			got, err := w.svc.UpdateIdentifier(w.ctx, a, u)
			after := w.mustIdentifier(alice)
			if tt.reason != "" {
				wantErr(t, err, tt.kind, tt.reason)
				if after.Version != before.Version || after.ClaimsEndpoint != before.ClaimsEndpoint || !slices.Equal(after.Statuses, before.Statuses) {
					t.Fatalf("a refused update changed %+v to %+v", before, after)
				}
				return
			}
			if err != nil {
				t.Fatalf("UpdateIdentifier: %v", err)
			}
			wantEndpoint, wantSt := tt.wantEndpoint, tt.wantStatuses
			if !tt.changed {
				wantEndpoint, wantSt = before.ClaimsEndpoint, before.Statuses
			}
			if after.ClaimsEndpoint != wantEndpoint || got.ClaimsEndpoint != wantEndpoint {
				t.Fatalf("claims endpoint %q (answered %q), want %q", after.ClaimsEndpoint, got.ClaimsEndpoint, wantEndpoint)
			}
			wantStatuses(t, "stored", after.Statuses, wantSt...)
			wantStatuses(t, "answered", got.Statuses, wantSt...)
			if !slices.IsSorted(after.Statuses) {
				t.Fatalf("statuses %v are not kept sorted", after.Statuses)
			}
			effective := wantEndpoint
			if effective == "" {
				effective = w.agent(a).ClaimsEndpoint
			}
			if got.EffectiveClaimsEndpoint != effective {
				t.Fatalf("effective claims endpoint %q, want %q", got.EffectiveClaimsEndpoint, effective)
			}
			j := w.journal("identifier", alice)
			if !tt.changed {
				if after.Version != before.Version || got.Etag() != before.Etag() || len(j) != journaled {
					t.Fatalf("an update asking for what is in force made version %d from %d and %d journal entries", after.Version, before.Version, len(j)-journaled)
				}
				return
			}
			if after.Version != before.Version+1 || got.Etag() == before.Etag() || !after.UpdateTime.Equal(w.clock.Now()) {
				t.Fatalf("version %d → %d, etag %s → %s; want the next version and a new etag", before.Version, after.Version, before.Etag(), got.Etag())
			}
			if len(j) != journaled+1 || j[journaled].Action != "identifier.update" || j[journaled].Actor != "agent:"+a.ID || j[journaled].Before == "" || j[journaled].After == "" {
				t.Fatalf("journal %+v, want one more entry: the agent's update with before and after", j[journaled-1:])
			}
		})
	}
}

// TestEtags: an etag names one version of an object; a change made from an older one is
// refused with ABORTED, and one made from the current one goes through.
func TestEtags(t *testing.T) {
	w := newWorld(t)
	a := w.newAgent("alpha")
	first := w.register(a, alice)
	second := w.update(a, alice, "https://claims.alpha.agent.test/alice")
	if first.Etag() == second.Etag() || first.Etag() == "" {
		t.Fatalf("etags %q and %q, want two different ones", first.Etag(), second.Etag())
	}
	if got, err := w.svc.GetIdentifier(w.ctx, a, alice); err != nil || got.Etag() != second.Etag() {
		t.Fatalf("GetIdentifier etag %q, %v; want the update's %q", got.Etag(), err, second.Etag())
	}
	stale := first.Etag()
	_, err := w.svc.UpdateIdentifier(w.ctx, a, registry.IdentifierUpdate{Identifier: alice, Fields: []registry.IdentifierField{registry.IdentifierFieldClaimsEndpoint}, Etag: stale})
	wantErr(t, err, registry.KindAborted, "ETAG_MISMATCH")
	_, err = w.svc.SetServerStatus(w.ctx, operator, alice, []registry.Status{registry.StatusServerHold}, "", stale)
	wantErr(t, err, registry.KindAborted, "ETAG_MISMATCH")
	_, err = w.svc.DeleteIdentifier(w.ctx, a, alice, stale)
	wantErr(t, err, registry.KindAborted, "ETAG_MISMATCH")
	if i := w.mustIdentifier(alice); i.Version != second.Version || len(i.Statuses) != 0 {
		t.Fatalf("refused changes changed %+v", i)
	}

	held, err := w.svc.SetServerStatus(w.ctx, operator, alice, []registry.Status{registry.StatusServerHold}, "", second.Etag())
	if err != nil {
		t.Fatalf("SetServerStatus with the current etag: %v", err)
	}
	if _, err := w.svc.DeleteIdentifier(w.ctx, a, alice, held.Etag()); err != nil {
		t.Fatalf("DeleteIdentifier with the current etag: %v", err)
	}

	// An agent's etag is its own too.
	ag := w.agent(a)
	upd, err := w.svc.UpdateAgent(w.ctx, operator, a.ID, registry.AgentSpec{DisplayName: "Alpha"}, []registry.AgentField{registry.AgentFieldDisplayName}, ag.Etag())
	if err != nil || upd.Etag() == ag.Etag() {
		t.Fatalf("UpdateAgent with the current etag = %+v, %v", upd, err)
	}
	_, err = w.svc.UpdateAgent(w.ctx, operator, a.ID, registry.AgentSpec{DisplayName: "ALPHA"}, []registry.AgentField{registry.AgentFieldDisplayName}, ag.Etag())
	wantErr(t, err, registry.KindAborted, "ETAG_MISMATCH")
}

// TestSetServerStatusRules: only operators (and the registry itself) set server statuses;
// the statuses asked for replace the server statuses in force, exactly; the reason is bounded.
func TestSetServerStatusRules(t *testing.T) {
	const (
		sH  = registry.StatusServerHold
		sTP = registry.StatusServerTransferProhibited
		sDP = registry.StatusServerDeleteProhibited
		sUP = registry.StatusServerUpdateProhibited
	)
	tests := []struct {
		name    string
		actor   func(w *world, a registry.Actor) registry.Actor
		in      []registry.Status
		want    []registry.Status
		reason  string
		refusal string
		kind    registry.Kind
	}{
		{name: "an operator sets several", in: []registry.Status{sTP, sH, sDP}, want: []registry.Status{sDP, sH, sTP}},
		{name: "the registry itself may", actor: func(*world, registry.Actor) registry.Actor { return registry.System }, in: []registry.Status{sUP, sH}, want: []registry.Status{sH, sUP}},
		{name: "none clears them", in: nil, want: nil},
		{name: "a reason of 500 characters", in: []registry.Status{sH}, want: []registry.Status{sH}, reason: strings.Repeat("é", 500)},
		{name: "the sponsoring agent may not", actor: func(_ *world, a registry.Actor) registry.Actor { return a }, in: []registry.Status{sH},
			kind: registry.KindPermissionDenied, refusal: "OPERATOR_CREDENTIAL_REQUIRED"},
		{name: "a client status", in: []registry.Status{sH, registry.StatusClientDeleteProhibited}, kind: registry.KindInvalidArgument, refusal: "STATUS_NOT_SERVER_SETTABLE"},
		{name: "a lifecycle status", in: []registry.Status{registry.StatusPendingDelete}, kind: registry.KindInvalidArgument, refusal: "STATUS_NOT_SERVER_SETTABLE"},
		{name: "an unknown status", in: []registry.Status{"serverRenewProhibited"}, kind: registry.KindInvalidArgument, refusal: "STATUS_NOT_SERVER_SETTABLE"},
		{name: "a reason of 501 characters", in: []registry.Status{sH}, reason: strings.Repeat("a", 501), kind: registry.KindInvalidArgument, refusal: "REASON_INVALID"},
		{name: "a reason that is not UTF-8", in: []registry.Status{sH}, reason: "\xff", kind: registry.KindInvalidArgument, refusal: "REASON_INVALID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			a := w.newAgent("alpha")
			w.register(a, alice)
			w.update(a, alice, "", registry.StatusClientTransferProhibited)
			w.serverStatus(alice, "before", sUP)
			actor := operator
			if tt.actor != nil {
				actor = tt.actor(w, a)
			}
			got, err := w.svc.SetServerStatus(w.ctx, actor, alice, tt.in, tt.reason, "")
			i := w.mustIdentifier(alice)
			if tt.refusal != "" {
				wantErr(t, err, tt.kind, tt.refusal)
				wantStatuses(t, "after a refusal", i.Statuses, registry.StatusClientTransferProhibited, sUP)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := append([]registry.Status{registry.StatusClientTransferProhibited}, tt.want...)
			wantStatuses(t, "stored", i.Statuses, want...)
			wantStatuses(t, "answered", got.Statuses, want...)
			evs := w.events(a)
			last := evs[len(evs)-1]
			if last.Type != registry.EventServerStatusChanged || last.Data.Reason != tt.reason {
				t.Fatalf("last event %+v, want the change with its reason", last)
			}
			wantStatuses(t, "event", last.Data.Statuses, want...)
			wantStatuses(t, "event's previous", last.Data.PreviousStatuses, registry.StatusClientTransferProhibited, sUP)
			j := w.journal("identifier", alice)
			if e := j[len(j)-1]; e.Action != "identifier.server_status" || e.Actor != actor.String() {
				t.Fatalf("last journal entry %+v, want the change by %s", e, actor)
			}
		})
	}

	t.Run("an identifier that does not exist", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		_, err := w.svc.SetServerStatus(w.ctx, operator, "nobody.example.test", []registry.Status{sH}, "", "")
		wantErr(t, err, registry.KindNotFound, "IDENTIFIER_NOT_FOUND")
		_, err = w.svc.SetServerStatus(w.ctx, operator, "not a name", nil, "", "")
		wantErr(t, err, registry.KindInvalidArgument, "IDENTIFIER_MALFORMED")
	})
}

// TestAgentIsolation: an agent sees and changes only what it sponsors; another agent's
// identifier reads as not found, whatever the call. Operators see every identifier.
func TestAgentIsolation(t *testing.T) {
	w := newWorld(t)
	a, b := w.newAgent("alpha"), w.newAgent("beta")
	w.register(a, alice)
	calls := map[string]func() error{
		"GetIdentifier": func() error { _, err := w.svc.GetIdentifier(w.ctx, b, alice); return err },
		"UpdateIdentifier": func() error {
			_, err := w.svc.UpdateIdentifier(w.ctx, b, registry.IdentifierUpdate{Identifier: alice, ClaimsEndpoint: "https://evil.test/"})
			return err
		},
		"DeleteIdentifier":  func() error { _, err := w.svc.DeleteIdentifier(w.ctx, b, alice, ""); return err },
		"RestoreIdentifier": func() error { _, err := w.svc.RestoreIdentifier(w.ctx, b, alice); return err },
		"CreateCredentialLink": func() error {
			_, err := w.svc.CreateCredentialLink(w.ctx, b, alice, registry.CredentialLinkReset)
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) { wantErr(t, call(), registry.KindNotFound, "IDENTIFIER_NOT_FOUND") })
	}
	if list, next, err := w.svc.ListIdentifiers(w.ctx, b, 0, ""); err != nil || len(list) != 0 || next != "" {
		t.Fatalf("beta lists %+v, %q, %v", list, next, err)
	}
	i := w.mustIdentifier(alice)
	if i.ClaimsEndpoint != "" || i.AgentID != a.ID || i.Version != 1 {
		t.Fatalf("alpha's identifier after beta's attempts: %+v", i)
	}
	if got, err := w.svc.GetIdentifier(w.ctx, operator, alice); err != nil || got.AgentID != a.ID {
		t.Fatalf("operator GetIdentifier = %+v, %v", got, err)
	}
}
