package registry_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/registry"
)

// Listings page by key (AIP-158): a page size (0 for the default, capped at the maximum), and
// an opaque token that belongs to its listing.

// TestListTransfers: an agent lists the transfers it gains or loses by, in or out, all or
// only those pending, oldest first, page by page.
func TestListTransfers(t *testing.T) {
	w := newWorld(t, pending)
	a, b := w.newAgent("alpha"), w.newAgent("beta")
	for _, n := range []string{"a1", "a2", "a3"} {
		w.register(a, n+".example.test")
	}
	w.register(b, "b1.example.test")
	// The clock moves between requests, as a real one would: ids sort by request time.
	var out []registry.Transfer
	for _, n := range []string{"a1", "a2", "a3"} {
		out = append(out, w.requestTransfer(b, n+".example.test"))
		w.clock.Advance(time.Second)
	}
	in := w.requestTransfer(a, "b1.example.test")
	if _, err := w.svc.RejectTransfer(w.ctx, a, out[0].ID); err != nil {
		t.Fatal(err)
	}
	ids := func(ts ...registry.Transfer) []string {
		var out []string
		for _, tr := range ts {
			out = append(out, tr.ID)
		}
		return out
	}
	list := func(actor registry.Actor, dir registry.TransferDirection, pendingOnly bool) []string {
		t.Helper()
		var got []registry.Transfer
		token := ""
		for {
			page, next, err := w.svc.ListTransfers(w.ctx, actor, dir, pendingOnly, 1, token)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > 1 {
				t.Fatalf("page of %d transfers, want at most 1", len(page))
			}
			got = append(got, page...)
			if token = next; token == "" {
				return ids(got...)
			}
		}
	}
	tests := []struct {
		name        string
		actor       registry.Actor
		dir         registry.TransferDirection
		pendingOnly bool
		want        []string
	}{
		{"both", a, registry.TransferBoth, false, ids(out[0], out[1], out[2], in)},
		{"out", a, registry.TransferOut, false, ids(out...)},
		{"out pending", a, registry.TransferOut, true, ids(out[1], out[2])},
		{"in", a, registry.TransferIn, false, ids(in)},
		{"in pending", a, registry.TransferIn, true, ids(in)},
		{"both pending", a, registry.TransferBoth, true, ids(out[1], out[2], in)},
		{"the other side in", b, registry.TransferIn, false, ids(out...)},
		{"the other side out", b, registry.TransferOut, false, ids(in)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := list(tt.actor, tt.dir, tt.pendingOnly); !slices.Equal(got, tt.want) {
				t.Fatalf("listed %v, want %v", got, tt.want)
			}
		})
	}

	// A page token belongs to its listing: its direction and filter.
	_, token, err := w.svc.ListTransfers(w.ctx, a, registry.TransferOut, false, 1, "")
	if err != nil || token == "" {
		t.Fatalf("first page: %q, %v", token, err)
	}
	for _, other := range []struct {
		dir         registry.TransferDirection
		pendingOnly bool
	}{{registry.TransferIn, false}, {registry.TransferOut, true}, {registry.TransferBoth, false}} {
		_, _, err = w.svc.ListTransfers(w.ctx, a, other.dir, other.pendingOnly, 1, token)
		wantErr(t, err, registry.KindInvalidArgument, "INVALID_PAGE_TOKEN")
	}
	_, _, err = w.svc.ListTransfers(w.ctx, a, 7, false, 0, "")
	wantErr(t, err, registry.KindInvalidArgument, "INVALID_DIRECTION")
	_, _, err = w.svc.ListTransfers(w.ctx, a, registry.TransferBoth, false, -1, "")
	wantErr(t, err, registry.KindInvalidArgument, "INVALID_PAGE_SIZE")
	_, err = w.svc.GetTransfer(w.ctx, a, "")
	wantErr(t, err, registry.KindInvalidArgument, "TRANSFER_ID_REQUIRED")
	_, err = w.svc.ApproveTransfer(w.ctx, a, "")
	wantErr(t, err, registry.KindInvalidArgument, "TRANSFER_ID_REQUIRED")
	_, err = w.svc.GetTransfer(w.ctx, a, "tr_nosuchtransfer")
	wantErr(t, err, registry.KindNotFound, "TRANSFER_NOT_FOUND")
}

// TestListIdentifiers: an agent's identifiers, ordered by name, page by page, each with the
// claims endpoint in effect.
func TestListIdentifiers(t *testing.T) {
	w := newWorld(t)
	a, b := w.newAgent("alpha"), w.newAgent("beta")
	names := []string{"a1.example.test", "a2.example.test", "a3.example.test", "a4.example.test", "a5.example.test"}
	for _, n := range slices.Backward(names) {
		w.register(a, n)
	}
	w.register(b, "a0.example.test")
	w.update(a, "a3.example.test", "https://claims.alpha.agent.test/a3")
	for _, tc := range []struct {
		size  int32
		pages int
	}{{2, 3}, {5, 1}, {0, 1}, {registry.MaxPageSize + 1, 1}} {
		t.Run(fmt.Sprintf("pages of %d", tc.size), func(t *testing.T) {
			var got []string
			token, pages := "", 0
			for {
				page, next, err := w.svc.ListIdentifiers(w.ctx, a, tc.size, token)
				if err != nil {
					t.Fatal(err)
				}
				pages++
				for _, i := range page {
					got = append(got, i.Name)
					want := w.agent(a).ClaimsEndpoint
					if i.Name == "a3.example.test" {
						want = "https://claims.alpha.agent.test/a3"
					}
					if i.EffectiveClaimsEndpoint != want {
						t.Fatalf("%s lists the claims endpoint %q, want %q", i.Name, i.EffectiveClaimsEndpoint, want)
					}
				}
				if token = next; token == "" {
					break
				}
			}
			if pages != tc.pages || !slices.Equal(got, names) {
				t.Fatalf("%d pages: %v; want %d pages of %v", pages, got, tc.pages, names)
			}
		})
	}
	_, _, err := w.svc.ListIdentifiers(w.ctx, a, 0, "garbage!")
	wantErr(t, err, registry.KindInvalidArgument, "INVALID_PAGE_TOKEN")
	_, _, err = w.svc.ListIdentifiers(w.ctx, a, -1, "")
	wantErr(t, err, registry.KindInvalidArgument, "INVALID_PAGE_SIZE")
}

// TestListJournal: the journal lists every change, oldest first, filtered by object; an
// identifier may be named in any accepted form.
func TestListJournal(t *testing.T) {
	w := newWorld(t)
	a := w.newAgent("alpha")
	w.register(a, "bücher.example.test")
	w.update(a, "bücher.example.test", "https://claims.alpha.agent.test/b")
	w.remove(a, "bücher.example.test")
	entries, _, err := w.svc.ListJournal(w.ctx, registry.JournalFilter{ObjectType: "identifier", ObjectID: "BÜCHER.example.test."}, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(entries); !slices.Equal(got, []string{"identifier.register", "identifier.update", "identifier.delete"}) {
		t.Fatalf("journal of the identifier %v", got)
	}
	for k, e := range entries {
		if e.ObjectID != "xn--bcher-kva.example.test" || e.Actor != "agent:"+a.ID || !e.Time.Equal(start) || (k > 0 && e.ID <= entries[k-1].ID) {
			t.Fatalf("entry %+v", e)
		}
	}
	var all []registry.JournalEntry
	token := ""
	for {
		page, next, err := w.svc.ListJournal(w.ctx, registry.JournalFilter{}, 2, token)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if token = next; token == "" {
			break
		}
	}
	// The agent, the challenge made and checked, and the identifier's three changes.
	want := []string{"agent.create", "challenge.create", "challenge.verify", "identifier.register", "identifier.update", "identifier.delete"}
	if got := actions(all); !slices.Equal(got, want) {
		t.Fatalf("the whole journal %v, want %v", got, want)
	}
	_, _, err = w.svc.ListJournal(w.ctx, registry.JournalFilter{ObjectType: "identifier", ObjectID: "*.example.test"}, 0, "")
	wantErr(t, err, registry.KindInvalidArgument, "IDENTIFIER_WILDCARD")
	_, _, err = w.svc.ListJournal(w.ctx, registry.JournalFilter{}, 0, "garbage!")
	wantErr(t, err, registry.KindInvalidArgument, "INVALID_PAGE_TOKEN")
}
