package registry_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/dnsverify"
	"github.com/id4me/id4me-registry/registry"
)

// The periodic check of each identifier's _openid record: it must name this registry's
// authority as iss and, when it names a claims provider, the sponsoring agent. The sponsor is
// told when the outcome changes.

// TestOpenIDCheckOutcomes: what one check stores and whom it tells, by what the record says
// and what the check before found.
func TestOpenIDCheckOutcomes(t *testing.T) {
	const day = 24 * time.Hour
	matches := openidRecord(authorityHost, "alpha.agent.test")
	missing := dnsverify.OpenIDCheck{Status: dnsverify.OpenIDMissing, Detail: "no _openid record"}
	failed := dnsverify.OpenIDCheck{Status: dnsverify.OpenIDError, Detail: "SERVFAIL"}
	tests := []struct {
		name string
		// before, if set, is what the check before found.
		before *dnsverify.OpenIDCheck
		check  dnsverify.OpenIDCheck
		// want is the status stored, next when the next check is due after this one, told
		// the previous status the agent is told of (nil: no event).
		want dnsverify.OpenIDStatus
		next time.Duration
		told *dnsverify.OpenIDStatus
	}{
		{name: "first check matches", check: matches, want: dnsverify.OpenIDMatches, next: day},
		{name: "first check matches without a claims provider", check: openidRecord(authorityHost, ""), want: dnsverify.OpenIDMatches, next: day},
		{name: "claims provider as a URL of the sponsor", check: openidRecord(authorityHost, "https://ALPHA.agent.test./"), want: dnsverify.OpenIDMatches, next: day},
		{name: "claims provider with a port", check: openidRecord(authorityHost, "alpha.agent.test:8443"), want: dnsverify.OpenIDMatches, next: day},
		{name: "first check finds nothing", check: missing, want: dnsverify.OpenIDMissing, next: day, told: status("")},
		{name: "first check finds another issuer", check: openidRecord("id.elsewhere.test", "alpha.agent.test"), want: dnsverify.OpenIDMismatch, next: day, told: status("")},
		{name: "first check finds another claims provider", check: openidRecord(authorityHost, "beta.agent.test"), want: dnsverify.OpenIDMismatch, next: day, told: status("")},
		{name: "first check fails", check: failed, want: dnsverify.OpenIDError, next: 15 * time.Minute},
		{name: "still matches", before: &matches, check: matches, want: dnsverify.OpenIDMatches, next: day},
		{name: "record gone", before: &matches, check: missing, want: dnsverify.OpenIDMissing, next: day, told: status(dnsverify.OpenIDMatches)},
		{name: "record back", before: &missing, check: matches, want: dnsverify.OpenIDMatches, next: day, told: status(dnsverify.OpenIDMissing)},
		{name: "still missing", before: &missing, check: missing, want: dnsverify.OpenIDMissing, next: day},
		{name: "a failure keeps the last outcome", before: &matches, check: failed, want: dnsverify.OpenIDMatches, next: 15 * time.Minute},
		{name: "a failure after a failure", before: &failed, check: failed, want: dnsverify.OpenIDError, next: 15 * time.Minute},
		{name: "an outcome after failures is news unless it matches", before: &failed, check: missing, want: dnsverify.OpenIDMissing, next: day, told: status(dnsverify.OpenIDError)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			a := w.newAgent("alpha")
			w.register(a, alice)
			w.clock.Advance(10 * time.Minute)
			if tt.before != nil {
				w.dns.setOpenID(alice, *tt.before)
				if n := w.sweep(w.svc.SweepOpenID); n != 1 {
					t.Fatalf("the first sweep checked %d, want 1", n)
				}
				w.clock.Set(w.mustIdentifier(alice).OpenID.NextCheck)
				if _, err := w.svc.AckEvents(w.ctx, a, eventIDs(w.events(a))); err != nil {
					t.Fatal(err)
				}
			}
			w.dns.setOpenID(alice, tt.check)
			if n := w.sweep(w.svc.SweepOpenID); n != 1 {
				t.Fatalf("the sweep checked %d, want 1", n)
			}
			got := w.mustIdentifier(alice).OpenID
			if got.Status != tt.want || !got.NextCheck.Equal(w.clock.Now().Add(tt.next)) {
				t.Fatalf("stored %+v; want %s with the next check in %v", got, tt.want, tt.next)
			}
			if tt.check.Status != dnsverify.OpenIDError && (got.Record != tt.check.Record || !got.CheckTime.Equal(w.clock.Now())) {
				t.Fatalf("stored %+v; want the record %q checked now", got, tt.check.Record)
			}
			if tt.want == dnsverify.OpenIDMismatch && got.Detail == "" {
				t.Fatalf("a mismatch stored without a detail: %+v", got)
			}
			evs := w.events(a)
			if tt.told == nil {
				if len(evs) != 0 {
					t.Fatalf("the agent was told %+v, want nothing", evs)
				}
				return
			}
			if len(evs) != 1 || evs[0].Type != registry.EventOpenIDRecordChanged || evs[0].Data.OpenID == nil ||
				evs[0].Data.OpenID.Status != tt.want || evs[0].Data.PreviousOpenIDStatus != string(*tt.told) {
				t.Fatalf("the agent was told %+v, want the change to %s from %q", evs, tt.want, *tt.told)
			}
		})
	}
}

func status(s dnsverify.OpenIDStatus) *dnsverify.OpenIDStatus { return &s }

// TestOpenIDCheckSchedule: the first check is due ten minutes after the registration (or the
// check interval, if shorter); each check asks about the identifier's DNS name and this
// registry's authority; identifiers pending delete are not checked; without a checker or an
// authority nothing is.
func TestOpenIDCheckSchedule(t *testing.T) {
	t.Run("due times", func(t *testing.T) {
		w := newWorld(t)
		a := w.newAgent("alpha")
		w.register(a, alice)
		w.register(a, "bob@example.test")
		w.clock.Advance(10*time.Minute - time.Microsecond)
		if n := w.sweep(w.svc.SweepOpenID); n != 0 {
			t.Fatalf("before the first check was due the sweep checked %d", n)
		}
		w.clock.Advance(time.Microsecond)
		if n := w.sweep(w.svc.SweepOpenID); n != 2 {
			t.Fatalf("when the first check was due the sweep checked %d, want 2", n)
		}
		if got := w.dns.openidChecks(); !slices.Equal(slices.Sorted(slices.Values(got)), []string{bobLabel + ".example.test", alice}) {
			t.Fatalf("checked %v, want the DNS names of both", got)
		}
		if n := w.sweep(w.svc.SweepOpenID); n != 0 {
			t.Fatalf("a second sweep checked %d, want 0", n)
		}
		for _, iss := range w.dns.issuers {
			if iss != authorityHost {
				t.Fatalf("a check expected the issuer %q, want %q", iss, authorityHost)
			}
		}
	})
	t.Run("a short interval", func(t *testing.T) {
		w := newWorld(t, func(c *registry.Config) { c.OpenIDCheckInterval = time.Minute })
		a := w.newAgent("alpha")
		w.register(a, alice)
		if next := w.mustIdentifier(alice).OpenID.NextCheck; !next.Equal(start.Add(time.Minute)) {
			t.Fatalf("first check due at %v, want a minute after the registration", next)
		}
		w.clock.Advance(time.Minute)
		w.dns.setOpenID(alice, dnsverify.OpenIDCheck{Status: dnsverify.OpenIDError})
		w.sweep(w.svc.SweepOpenID)
		if next := w.mustIdentifier(alice).OpenID.NextCheck; !next.Equal(w.clock.Now().Add(time.Minute)) {
			t.Fatalf("after a failure the next check is due at %v, want within the interval", next)
		}
	})
	t.Run("pending delete", func(t *testing.T) {
		w := newWorld(t)
		a := w.newAgent("alpha")
		w.register(a, alice)
		w.dns.setOpenID(alice, openidRecord(authorityHost, "alpha.agent.test"))
		w.clock.Advance(10 * time.Minute)
		w.sweep(w.svc.SweepOpenID)
		before := w.mustIdentifier(alice).OpenID
		w.remove(a, alice)
		w.dns.setOpenID(alice, dnsverify.OpenIDCheck{Status: dnsverify.OpenIDMissing})
		w.clock.Set(before.NextCheck)
		if n := w.sweep(w.svc.SweepOpenID); n != 1 {
			t.Fatalf("the sweep handled %d, want 1", n)
		}
		after := w.mustIdentifier(alice).OpenID
		if len(w.dns.openidChecks()) != 1 || after.Status != before.Status || !after.CheckTime.Equal(before.CheckTime) || !after.NextCheck.Equal(w.clock.Now().Add(24*time.Hour)) {
			t.Fatalf("after a sweep of an identifier pending delete: %+v (before %+v), %d checks; want no check, the outcome kept and the next in a day", after, before, len(w.dns.openidChecks()))
		}
		if got := eventTypes(w.events(a)); !slices.Equal(got, []registry.EventType{registry.EventIdentifierDeleted}) {
			t.Fatalf("the agent was told %v", got)
		}
	})
	for name, opt := range map[string]option{
		"no checker":   func(c *registry.Config) { c.OpenID = nil },
		"no authority": func(c *registry.Config) { c.AuthorityIssuer = "" },
	} {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t, opt)
			a := w.newAgent("alpha")
			w.register(a, alice)
			w.clock.Advance(48 * time.Hour)
			if n := w.sweep(w.svc.SweepOpenID); n != 0 || len(w.dns.openidChecks()) != 0 {
				t.Fatalf("the sweep checked %d (%v), want nothing", n, w.dns.openidChecks())
			}
		})
	}
}

// TestOpenIDCheckIsNotAChange: storing a check's outcome changes neither the identifier's
// version nor its etag, so an agent's update made from a read before the check goes through.
func TestOpenIDCheckIsNotAChange(t *testing.T) {
	w := newWorld(t)
	a := w.newAgent("alpha")
	read := w.register(a, alice)
	w.clock.Advance(10 * time.Minute)
	w.dns.setOpenID(alice, dnsverify.OpenIDCheck{Status: dnsverify.OpenIDMissing})
	w.sweep(w.svc.SweepOpenID)
	got, err := w.svc.GetIdentifier(w.ctx, a, alice)
	if err != nil || got.Etag() != read.Etag() || got.OpenID.Status != dnsverify.OpenIDMissing {
		t.Fatalf("after the check GetIdentifier = %+v, %v; want the same etag and the outcome", got, err)
	}
	if _, err := w.svc.UpdateIdentifier(w.ctx, a, registry.IdentifierUpdate{Identifier: alice, Fields: []registry.IdentifierField{registry.IdentifierFieldStatuses}, Statuses: []registry.Status{registry.StatusClientTransferProhibited}, Etag: read.Etag()}); err != nil {
		t.Fatalf("an update with the etag read before the check: %v", err)
	}
	if after := w.mustIdentifier(alice); after.OpenID.Status != dnsverify.OpenIDMissing {
		t.Fatalf("an update dropped the check's outcome: %+v", after.OpenID)
	}
	if j := w.journal("identifier", alice); strings.Contains(strings.Join(actions(j), ","), "openid") {
		t.Fatalf("the check was journaled as a change: %v", actions(j))
	}
}
