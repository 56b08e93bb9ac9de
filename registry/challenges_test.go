package registry_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/acme"
	"github.com/id4me/id4me-registry/dnsverify"
	"github.com/id4me/id4me-registry/internal/testdb"
	"github.com/id4me/id4me-registry/registry"
)

// The DNS labels of local parts, computed apart from the code under test with coreutils:
// printf '%s' 'alice.smith+id4me' | sha256sum | cut -c1-56
const (
	aliceLabel = "42d0feda68886315bce4c8e3768ae05995c214465a4fbca62a41b23e" // alice.smith+id4me
	bobLabel   = "81b637d8fcd2c6da6359e6963113a1170de795e4b725b84d1e0b4cfd" // bob
)

// TestCreateChallenge: a challenge is bound to its agent, its identifier in canonical form and
// its purpose, and names the record to publish and its value.
func TestCreateChallenge(t *testing.T) {
	w := newWorld(t)
	a := w.newAgent("alpha")
	tests := []struct {
		in, identifier, dnsName, unicode string
	}{
		{"Alice.Example.Test.", "alice.example.test", "alice.example.test", ""},
		{"BÜCHER.example.test", "xn--bcher-kva.example.test", "xn--bcher-kva.example.test", "bücher.example.test"},
		{"xn--bcher-kva.EXAMPLE.test", "xn--bcher-kva.example.test", "xn--bcher-kva.example.test", "bücher.example.test"},
		{"alice.smith+id4me@Example.TEST.", "alice.smith+id4me@example.test", aliceLabel + ".example.test", ""},
		{"Alice.Smith+id4me@example.test", "Alice.Smith+id4me@example.test", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			c, err := w.svc.CreateChallenge(w.ctx, a, tt.in, registry.PurposeRegister)
			if err != nil {
				t.Fatal(err)
			}
			if c.Identifier != tt.identifier || c.AgentID != a.ID || c.Purpose != registry.PurposeRegister || c.Status != registry.ChallengePending ||
				c.Attempts != 0 || c.Problem != nil || c.SponsorAgentID != "" {
				t.Fatalf("challenge %+v, want a pending register challenge of %s for %s", c, tt.identifier, a.ID)
			}
			if tt.dnsName != "" && (c.DNSName() != tt.dnsName || c.RecordName() != "_acme-challenge."+tt.dnsName+".") {
				t.Fatalf("DNS name %s, record %s; want %s", c.DNSName(), c.RecordName(), tt.dnsName)
			}
			thumb := w.agent(a).AccountKeyThumbprint
			if len(c.Token) < 22 || c.KeyAuthorization != c.Token+"."+thumb || c.RecordValue() != acme.RecordValue(c.KeyAuthorization) {
				t.Fatalf("token %q, key authorization %q; want a token of 128 bits or more and token.%s", c.Token, c.KeyAuthorization, thumb)
			}
			if !c.CreateTime.Equal(w.clock.Now()) || !c.ExpireTime.Equal(w.clock.Now().Add(time.Hour)) {
				t.Fatalf("created %v, expires %v; want now and an hour later", c.CreateTime, c.ExpireTime)
			}
			if got, err := w.svc.GetChallenge(w.ctx, a, c.ID); err != nil || got.ID != c.ID || got.Token != c.Token {
				t.Fatalf("GetChallenge = %+v, %v", got, err)
			}
			if j := w.journal("challenge", c.ID); len(j) != 1 || j[0].Action != "challenge.create" || strings.Contains(j[0].After, c.Token) {
				t.Fatalf("journal %+v, want one challenge.create entry without the token", j)
			}
		})
	}
	t.Run("tokens differ", func(t *testing.T) {
		c1 := w.challenge(a, "one.example.test", registry.PurposeRegister)
		c2 := w.challenge(a, "one.example.test", registry.PurposeRegister)
		if c1.ID == c2.ID || c1.Token == c2.Token {
			t.Fatalf("two challenges share an ID or token: %+v, %+v", c1, c2)
		}
	})
	t.Run("transfer names the sponsor", func(t *testing.T) {
		b := w.newAgent("beta")
		w.register(b, "bob.example.test")
		c := w.challenge(a, "bob.example.test", registry.PurposeTransfer)
		if c.SponsorAgentID != b.ID || c.Purpose != registry.PurposeTransfer {
			t.Fatalf("transfer challenge %+v, want one naming the sponsor %s", c, b.ID)
		}
	})
}

// TestCreateChallengeRefusals: what a challenge could never be used for is refused at once,
// before the agent publishes a record in vain, and nothing is stored.
func TestCreateChallengeRefusals(t *testing.T) {
	tests := []struct {
		name       string
		opts       []option
		identifier string
		purpose    registry.Purpose
		kind       registry.Kind
		reason     string
		// says is a piece of the message.
		says string
	}{
		{name: "no purpose", identifier: "nopurpose.example.test", kind: registry.KindInvalidArgument, reason: "PURPOSE_REQUIRED"},
		{name: "an unknown purpose", identifier: "x.example.test", purpose: "renew", kind: registry.KindInvalidArgument, reason: "PURPOSE_REQUIRED"},
		{name: "empty", identifier: "", kind: registry.KindInvalidArgument, reason: "IDENTIFIER_EMPTY"},
		{name: "a TLD", identifier: "com", kind: registry.KindInvalidArgument, reason: "IDENTIFIER_TOO_FEW_LABELS"},
		{name: "a public suffix", identifier: "co.uk", kind: registry.KindInvalidArgument, reason: "IDENTIFIER_PUBLIC_SUFFIX"},
		{name: "a wildcard", identifier: "*.example.test", kind: registry.KindInvalidArgument, reason: "IDENTIFIER_WILDCARD"},
		{name: "an IPv4 address", identifier: "192.0.2.1", kind: registry.KindInvalidArgument, reason: "IDENTIFIER_IP_LITERAL"},
		{name: "an IPv6 literal", identifier: "[2001:db8::1]", kind: registry.KindInvalidArgument, reason: "IDENTIFIER_IP_LITERAL"},
		{name: "a long label", identifier: strings.Repeat("a", 64) + ".example.test", kind: registry.KindInvalidArgument, reason: "IDENTIFIER_LABEL_TOO_LONG"},
		{name: "an empty label", identifier: "alice..example.test", kind: registry.KindInvalidArgument, reason: "IDENTIFIER_MALFORMED"},
		{name: "two trailing dots", identifier: "alice.example.test..", kind: registry.KindInvalidArgument, reason: "IDENTIFIER_MALFORMED"},
		{name: "a space", identifier: "ali ce.example.test", kind: registry.KindInvalidArgument, reason: "IDENTIFIER_MALFORMED"},
		{name: "an underscore", identifier: "under_score.example.test", kind: registry.KindInvalidArgument, reason: "IDENTIFIER_MALFORMED"},
		{name: "a malformed transfer", identifier: "*.example.test", purpose: registry.PurposeTransfer, kind: registry.KindInvalidArgument, reason: "IDENTIFIER_WILDCARD"},
		{name: "a quoted local part", identifier: `"alice"@example.test`, kind: registry.KindInvalidArgument, reason: "IDENTIFIER_LOCAL_PART_MALFORMED"},

		// Names that may not be registered anew, outside dev mode.
		{name: "example.test outside dev mode", opts: []option{strict}, identifier: "alice.example.test", kind: registry.KindInvalidArgument, reason: "IDENTIFIER_SPECIAL_USE", says: "RFC 6761"},
		{name: "example.com outside dev mode", opts: []option{strict}, identifier: "alice.example.com", kind: registry.KindInvalidArgument, reason: "IDENTIFIER_SPECIAL_USE", says: "RFC 6761"},
		{name: "an e-mail form under example.org", opts: []option{strict}, identifier: "alice@example.org", kind: registry.KindInvalidArgument, reason: "IDENTIFIER_SPECIAL_USE", says: "RFC 6761"},
		{name: ".local", opts: []option{strict}, identifier: "printer.local", kind: registry.KindInvalidArgument, reason: "IDENTIFIER_SPECIAL_USE", says: "RFC 6762"},
		{name: ".onion", opts: []option{strict}, identifier: "duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion", kind: registry.KindInvalidArgument, reason: "IDENTIFIER_SPECIAL_USE", says: "RFC 7686"},
		{name: ".alt", opts: []option{strict}, identifier: "alice.alt", kind: registry.KindInvalidArgument, reason: "IDENTIFIER_SPECIAL_USE", says: "RFC 9476"},
		{name: "home.arpa", opts: []option{strict}, identifier: "router.home.arpa", kind: registry.KindInvalidArgument, reason: "IDENTIFIER_SPECIAL_USE", says: "RFC 8375"},
		{name: ".localhost", opts: []option{strict}, identifier: "alice.localhost", kind: registry.KindInvalidArgument, reason: "IDENTIFIER_SPECIAL_USE", says: "RFC 6761"},
		{name: ".internal", opts: []option{strict}, identifier: "alice.internal", kind: registry.KindInvalidArgument, reason: "IDENTIFIER_SPECIAL_USE", says: "ICANN"},

		// Names that may never be registered anew, dev mode or not.
		{name: "Cyrillic among Latin", identifier: "\u0430pple.example.test", kind: registry.KindInvalidArgument, reason: "IDENTIFIER_MIXED_SCRIPT", says: "Cyrillic and Latin"},
		{name: "Cyrillic among Latin, as an A-label", identifier: "xn--pple-43d.example.test", kind: registry.KindInvalidArgument, reason: "IDENTIFIER_MIXED_SCRIPT", says: "Cyrillic and Latin"},
		{name: "Cyrillic in a local part", identifier: "p\u0430ypal@example.test", kind: registry.KindInvalidArgument, reason: "IDENTIFIER_MIXED_SCRIPT", says: "Cyrillic and Latin"},
		{name: "Greek among Latin", identifier: "micr\u03bfsoft.example.test", kind: registry.KindInvalidArgument, reason: "IDENTIFIER_MIXED_SCRIPT", says: "Greek and Latin"},

		// Names taken.
		{name: "a registered name", identifier: "taken.example.test", kind: registry.KindAlreadyExists, reason: "IDENTIFIER_TAKEN", says: "already registered"},
		{name: "a registered name in another form", identifier: "TAKEN.example.test.", kind: registry.KindAlreadyExists, reason: "IDENTIFIER_TAKEN"},
		{name: "a domain that is an e-mail form's DNS name", identifier: aliceLabel + ".example.test", kind: registry.KindAlreadyExists, reason: "IDENTIFIER_TAKEN", says: "another identifier has its DNS name"},
		{name: "an e-mail form whose DNS name is a domain", identifier: "bob@example.test", kind: registry.KindAlreadyExists, reason: "IDENTIFIER_TAKEN", says: "another identifier has its DNS name " + bobLabel + ".example.test"},
		{name: "a registered e-mail form", identifier: "alice.smith+id4me@example.test", kind: registry.KindAlreadyExists, reason: "IDENTIFIER_TAKEN", says: "already registered"},

		// Transfers of what cannot be transferred.
		{name: "a transfer of a name not registered", identifier: "move.example.test", purpose: registry.PurposeTransfer, kind: registry.KindNotFound, reason: "IDENTIFIER_NOT_FOUND"},
		{name: "a transfer of an e-mail form's DNS name", identifier: aliceLabel + ".example.test", purpose: registry.PurposeTransfer, kind: registry.KindNotFound, reason: "IDENTIFIER_NOT_FOUND"},
		{name: "a transfer of one's own", identifier: "mine.example.test", purpose: registry.PurposeTransfer, kind: registry.KindFailedPrecondition, reason: "ALREADY_SPONSOR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			a, other := w.newAgent("alpha"), w.newAgent("other")
			w.register(other, "taken.example.test")
			w.register(other, "alice.smith+id4me@example.test")
			w.register(other, bobLabel+".example.test")
			w.register(a, "mine.example.test")
			svc := w.svc
			if len(tt.opts) > 0 {
				svc = w.instance(tt.opts...)
			}
			before := len(w.journal("challenge", ""))
			purpose := tt.purpose
			if purpose == "" && tt.reason != "PURPOSE_REQUIRED" {
				purpose = registry.PurposeRegister
			}
			_, err := svc.CreateChallenge(w.ctx, a, tt.identifier, purpose)
			wantErr(t, err, tt.kind, tt.reason)
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("message %q does not say %q", err, tt.says)
			}
			if tt.reason == "IDENTIFIER_TAKEN" && tt.identifier != "alice.smith+id4me@example.test" && strings.Contains(err.Error(), "alice.smith") {
				t.Errorf("message %q names another agent's identifier", err)
			}
			if tt.reason == "IDENTIFIER_TAKEN" {
				// The sponsor of the taken name is refused alike.
				_, err := svc.CreateChallenge(w.ctx, other, tt.identifier, purpose)
				wantErr(t, err, tt.kind, tt.reason)
			}
			if after := len(w.journal("challenge", "")); after != before {
				t.Errorf("%d challenges made by a refused call", after-before)
			}
		})
	}
}

// strict is a registry outside dev mode: special-use names are not registered.
func strict(c *registry.Config) { c.AllowSpecialUseNames = false }

// TestVerifyChallenge: a check asks the DNS for the challenge's record; a failed check is no
// error but a problem on the challenge, which stays pending until its attempts run out.
func TestVerifyChallenge(t *testing.T) {
	tests := []struct {
		name string
		// dns prepares the DNS for challenge c.
		dns        func(d *fakeDNS, c registry.Challenge)
		wantStatus registry.ChallengeStatus
		wantReason string
	}{
		{name: "record published", dns: func(d *fakeDNS, c registry.Challenge) { d.publish(c) }, wantStatus: registry.ChallengeValid},
		{name: "record missing", dns: func(*fakeDNS, registry.Challenge) {}, wantStatus: registry.ChallengePending, wantReason: dnsverify.ReasonRecordMissing},
		{name: "another value", dns: func(d *fakeDNS, c registry.Challenge) {
			d.txt[c.RecordName()] = "not-the-value"
		}, wantStatus: registry.ChallengePending, wantReason: dnsverify.ReasonRecordMismatch},
		{name: "nameservers disagree", dns: func(d *fakeDNS, c registry.Challenge) {
			d.fail(c.RecordName(), dnsverify.Problem{Reason: dnsverify.ReasonServersDisagree, Detail: "ns1 and ns2 disagree"})
		}, wantStatus: registry.ChallengePending, wantReason: dnsverify.ReasonServersDisagree},
		{name: "no nameserver answers", dns: func(d *fakeDNS, c registry.Challenge) {
			d.fail(c.RecordName(), dnsverify.Problem{Reason: dnsverify.ReasonTimeout, Detail: "no answer"})
		}, wantStatus: registry.ChallengePending, wantReason: dnsverify.ReasonTimeout},
		{name: "a failure without a problem", dns: func(d *fakeDNS, c registry.Challenge) {
			d.txt[c.RecordName()] = "x"
			d.fail(c.RecordName(), dnsverify.Problem{})
		}, wantStatus: registry.ChallengePending, wantReason: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			obs := &observer{}
			w := newWorld(t, func(c *registry.Config) { c.Observer = obs })
			a := w.newAgent("alpha")
			c := w.challenge(a, alice, registry.PurposeRegister)
			tt.dns(w.dns, c)
			w.clock.Advance(time.Minute)
			v, err := w.svc.VerifyChallenge(w.ctx, a, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			if w.dns.checks(c.RecordName()) != 1 {
				t.Fatalf("the DNS was asked about %s %d times, want once", c.RecordName(), w.dns.checks(c.RecordName()))
			}
			if v.Status != tt.wantStatus || v.Attempts != 1 {
				t.Fatalf("after a check: %s after %d attempts, want %s after 1", v.Status, v.Attempts, tt.wantStatus)
			}
			outcome := "valid"
			if tt.wantStatus == registry.ChallengeValid {
				if v.Problem != nil || !v.ValidateTime.Equal(w.clock.Now()) {
					t.Fatalf("valid challenge: problem %+v, validated %v", v.Problem, v.ValidateTime)
				}
			} else {
				reason := tt.wantReason
				if reason == "" {
					reason = dnsverify.ReasonError // the checker gave no reason
				}
				if v.Problem == nil || v.Problem.Reason != reason || v.Problem.Detail == "" || !reflect.DeepEqual(v.Problem.Queries, []dnsverify.Query{answeredBy}) {
					t.Fatalf("problem %+v, want %s with a detail and the queries made", v.Problem, reason)
				}
				if !v.ValidateTime.IsZero() {
					t.Fatalf("a failed check set the validate time %v", v.ValidateTime)
				}
				outcome = reason
			}
			if got, err := w.svc.GetChallenge(w.ctx, a, c.ID); err != nil || got.Status != v.Status || got.Attempts != 1 {
				t.Fatalf("stored challenge %+v, %v; want what the check answered", got, err)
			}
			if !slices.Equal(obs.outcomes(), []string{outcome}) {
				t.Fatalf("observer told %v, want [%s]", obs.outcomes(), outcome)
			}
			if j := w.journal("challenge", c.ID); len(j) != 2 || j[1].Action != "challenge.verify" || j[1].Actor != "agent:"+a.ID {
				t.Fatalf("journal %v, want the create and the check", actions(j))
			}
		})
	}
}

// observer counts challenge outcomes.
type observer struct {
	mu   sync.Mutex
	seen []string
}

func (o *observer) ChallengeChecked(outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen = append(o.seen, outcome)
}

func (o *observer) outcomes() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.seen)
}

// TestChallengeLifecycle: a challenge can be checked until its attempts or its time run out,
// used once, and only by its agent; each end has its refusal.
func TestChallengeLifecycle(t *testing.T) {
	t.Run("attempts run out", func(t *testing.T) {
		w := newWorld(t)
		a := w.newAgent("alpha")
		c := w.challenge(a, alice, registry.PurposeRegister)
		var v registry.Challenge
		for k := range 3 {
			var err error
			if v, err = w.svc.VerifyChallenge(w.ctx, a, c.ID); err != nil {
				t.Fatal(err)
			}
			if want := map[bool]registry.ChallengeStatus{true: registry.ChallengeInvalid, false: registry.ChallengePending}[k == 2]; v.Status != want || v.Attempts != k+1 {
				t.Fatalf("after %d failed checks: %s, %d attempts; want %s", k+1, v.Status, v.Attempts, want)
			}
		}
		w.dns.publish(c)
		_, err := w.svc.VerifyChallenge(w.ctx, a, c.ID)
		wantErr(t, err, registry.KindFailedPrecondition, "CHALLENGE_INVALID")
		if n := w.dns.checks(c.RecordName()); n != 3 {
			t.Fatalf("the DNS was asked %d times, want 3: an invalid challenge is not checked", n)
		}
		_, err = w.svc.RegisterIdentifier(w.ctx, a, c.ID, "", "")
		wantErr(t, err, registry.KindFailedPrecondition, "CHALLENGE_INVALID")
	})
	t.Run("a success after failures clears the problem", func(t *testing.T) {
		w := newWorld(t)
		a := w.newAgent("alpha")
		c := w.challenge(a, alice, registry.PurposeRegister)
		if v, err := w.svc.VerifyChallenge(w.ctx, a, c.ID); err != nil || v.Problem == nil {
			t.Fatalf("first check = %+v, %v; want a problem", v, err)
		}
		w.dns.publish(c)
		v, err := w.svc.VerifyChallenge(w.ctx, a, c.ID)
		if err != nil || v.Status != registry.ChallengeValid || v.Problem != nil || v.Attempts != 2 {
			t.Fatalf("second check = %+v, %v; want valid without a problem after 2 attempts", v, err)
		}
	})
	t.Run("a valid challenge is not checked again", func(t *testing.T) {
		w := newWorld(t)
		a := w.newAgent("alpha")
		c := w.validChallenge(a, alice, registry.PurposeRegister)
		delete(w.dns.txt, c.RecordName())
		v, err := w.svc.VerifyChallenge(w.ctx, a, c.ID)
		if err != nil || v.Status != registry.ChallengeValid || v.Attempts != 1 || w.dns.checks(c.RecordName()) != 1 {
			t.Fatalf("checking a valid challenge again = %+v, %v, %d DNS checks; want it as it was", v, err, w.dns.checks(c.RecordName()))
		}
	})
	t.Run("expiry", func(t *testing.T) {
		w := newWorld(t)
		a := w.newAgent("alpha")
		pendingOne := w.challenge(a, "pending.example.test", registry.PurposeRegister)
		valid := w.validChallenge(a, alice, registry.PurposeRegister)
		w.clock.Set(valid.ExpireTime.Add(-time.Microsecond))
		if got, _ := w.svc.GetChallenge(w.ctx, a, valid.ID); got.Status != registry.ChallengeValid {
			t.Fatalf("a moment before its expiry the challenge is %s, want valid", got.Status)
		}
		w.clock.Set(valid.ExpireTime)
		for _, c := range []registry.Challenge{pendingOne, valid} {
			if got, err := w.svc.GetChallenge(w.ctx, a, c.ID); err != nil || got.Status != registry.ChallengeExpired {
				t.Fatalf("GetChallenge at the expiry = %+v, %v; want expired", got, err)
			}
			_, err := w.svc.VerifyChallenge(w.ctx, a, c.ID)
			wantErr(t, err, registry.KindFailedPrecondition, "CHALLENGE_EXPIRED")
		}
		_, err := w.svc.RegisterIdentifier(w.ctx, a, valid.ID, "", "")
		wantErr(t, err, registry.KindFailedPrecondition, "CHALLENGE_EXPIRED")
		if n := w.dns.checks(pendingOne.RecordName()); n != 0 {
			t.Fatalf("an expired challenge was checked %d times", n)
		}
	})
	t.Run("consumed", func(t *testing.T) {
		w := newWorld(t)
		a := w.newAgent("alpha")
		c := w.validChallenge(a, alice, registry.PurposeRegister)
		if _, err := w.svc.RegisterIdentifier(w.ctx, a, c.ID, "", ""); err != nil {
			t.Fatal(err)
		}
		if got, _ := w.svc.GetChallenge(w.ctx, a, c.ID); got.Status != registry.ChallengeConsumed {
			t.Fatalf("a used challenge is %s, want consumed", got.Status)
		}
		_, err := w.svc.RegisterIdentifier(w.ctx, a, c.ID, "", "")
		wantErr(t, err, registry.KindFailedPrecondition, "CHALLENGE_CONSUMED")
		_, err = w.svc.VerifyChallenge(w.ctx, a, c.ID)
		wantErr(t, err, registry.KindFailedPrecondition, "CHALLENGE_CONSUMED")
	})
	t.Run("not yet verified", func(t *testing.T) {
		w := newWorld(t)
		a := w.newAgent("alpha")
		c := w.challenge(a, alice, registry.PurposeRegister)
		_, err := w.svc.RegisterIdentifier(w.ctx, a, c.ID, "", "")
		wantErr(t, err, registry.KindFailedPrecondition, "CHALLENGE_NOT_VALID")
	})
	t.Run("another agent's", func(t *testing.T) {
		w := newWorld(t)
		a, b := w.newAgent("alpha"), w.newAgent("beta")
		c := w.validChallenge(a, alice, registry.PurposeRegister)
		_, err := w.svc.GetChallenge(w.ctx, b, c.ID)
		wantErr(t, err, registry.KindNotFound, "CHALLENGE_NOT_FOUND")
		_, err = w.svc.VerifyChallenge(w.ctx, b, c.ID)
		wantErr(t, err, registry.KindNotFound, "CHALLENGE_NOT_FOUND")
		_, err = w.svc.RegisterIdentifier(w.ctx, b, c.ID, "", "")
		wantErr(t, err, registry.KindNotFound, "CHALLENGE_NOT_FOUND")
		_, err = w.svc.RequestTransfer(w.ctx, b, c.ID, "")
		wantErr(t, err, registry.KindNotFound, "CHALLENGE_NOT_FOUND")
		if got, _ := w.svc.GetChallenge(w.ctx, a, c.ID); got.Status != registry.ChallengeValid {
			t.Fatalf("after another agent's attempts the challenge is %s, want valid", got.Status)
		}
	})
	t.Run("no id", func(t *testing.T) {
		w := newWorld(t)
		a := w.newAgent("alpha")
		_, err := w.svc.GetChallenge(w.ctx, a, "")
		wantErr(t, err, registry.KindInvalidArgument, "CHALLENGE_ID_REQUIRED")
		_, err = w.svc.VerifyChallenge(w.ctx, a, "")
		wantErr(t, err, registry.KindInvalidArgument, "CHALLENGE_ID_REQUIRED")
		_, err = w.svc.RegisterIdentifier(w.ctx, a, "", "", "")
		wantErr(t, err, registry.KindInvalidArgument, "CHALLENGE_ID_REQUIRED")
		_, err = w.svc.GetChallenge(w.ctx, a, "ch_nosuchchallenge")
		wantErr(t, err, registry.KindNotFound, "CHALLENGE_NOT_FOUND")
	})
	t.Run("an instance without DNS", func(t *testing.T) {
		w := newWorld(t)
		a := w.newAgent("alpha")
		c := w.challenge(a, alice, registry.PurposeRegister)
		_, err := w.instance(func(c *registry.Config) { c.DNS = nil }).VerifyChallenge(w.ctx, a, c.ID)
		wantErr(t, err, registry.KindUnavailable, "DNS_NOT_CONFIGURED")
		if got, _ := w.svc.GetChallenge(w.ctx, a, c.ID); got.Attempts != 0 {
			t.Fatalf("a check that could not be made counted %d attempts", got.Attempts)
		}
	})
	t.Run("a check whose caller went away", func(t *testing.T) {
		w := newWorld(t)
		a := w.newAgent("alpha")
		c := w.challenge(a, alice, registry.PurposeRegister)
		w.dns.publish(c)
		ctx, cancel := context.WithCancel(w.ctx)
		cancel()
		_, err := w.svc.VerifyChallenge(ctx, a, c.ID)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("VerifyChallenge with its context cancelled = %v, want context.Canceled", err)
		}
		if got, _ := w.svc.GetChallenge(w.ctx, a, c.ID); got.Status != registry.ChallengePending || got.Attempts != 0 {
			t.Fatalf("after a cancelled check the challenge is %+v; want it untouched", got)
		}
	})
	t.Run("e-mail form checked at its DNS name", func(t *testing.T) {
		w := newWorld(t)
		a := w.newAgent("alpha")
		c := w.validChallenge(a, "alice.smith+id4me@example.test", registry.PurposeRegister)
		if n := w.dns.checks("_acme-challenge." + aliceLabel + ".example.test."); n != 1 {
			t.Fatalf("the DNS was asked about the e-mail form's record %d times, want once", n)
		}
		i, err := w.svc.RegisterIdentifier(w.ctx, a, c.ID, "", "")
		if err != nil || i.Name != "alice.smith+id4me@example.test" || i.DNSName != aliceLabel+".example.test" || i.UnicodeName != i.Name {
			t.Fatalf("registered %+v, %v", i, err)
		}
	})
}

// TestRegisterIdentifier: a valid register challenge registers its identifier to its agent,
// with a new identity, in one step; a registration refused leaves the challenge as it was.
func TestRegisterIdentifier(t *testing.T) {
	w := newWorld(t)
	a := w.newAgent("alpha")
	c := w.validChallenge(a, "Bücher.Example.Test", registry.PurposeRegister)
	w.clock.Advance(time.Minute)
	i, err := w.svc.RegisterIdentifier(w.ctx, a, c.ID, "https://claims.alpha.agent.test/bücher", "")
	if err != nil {
		t.Fatal(err)
	}
	now := w.clock.Now()
	if i.Name != "xn--bcher-kva.example.test" || i.UnicodeName != "bücher.example.test" || i.DNSName != i.Name || i.AgentID != a.ID ||
		i.EffectiveClaimsEndpoint != i.ClaimsEndpoint || i.Version != 1 || !i.CreateTime.Equal(now) || !i.UpdateTime.Equal(now) || len(i.Statuses) != 0 {
		t.Fatalf("registered %+v", i)
	}
	stored := w.mustIdentifier(i.Name)
	if stored.IdentityID != i.IdentityID || !stored.OpenID.NextCheck.Equal(now.Add(10*time.Minute)) || stored.OpenID.Status != "" {
		t.Fatalf("stored %+v; want the identity and the first _openid check due in 10 minutes", stored)
	}
	identity := w.identity(i.IdentityID)
	if identity.SubjectSeed == "" || !identity.CreateTime.Equal(now) || !identity.RetireTime.IsZero() {
		t.Fatalf("identity %+v", identity)
	}
	j := w.journal("identifier", i.Name)
	if len(j) != 1 || j[0].Action != "identifier.register" || j[0].Before != "" || !strings.Contains(j[0].After, `"challenge_id":"`+c.ID+`"`) {
		t.Fatalf("journal %+v, want the registration naming its challenge", j)
	}
	if got, err := w.svc.GetIdentifier(w.ctx, a, "BÜCHER.example.test."); err != nil || got.Name != i.Name {
		t.Fatalf("GetIdentifier in another form = %+v, %v", got, err)
	}

	t.Run("a bad claims endpoint", func(t *testing.T) {
		c := w.validChallenge(a, "carol.example.test", registry.PurposeRegister)
		_, err := w.svc.RegisterIdentifier(w.ctx, a, c.ID, "https://10.0.0.1/claims", "")
		wantErr(t, err, registry.KindInvalidArgument, "CLAIMS_ENDPOINT_PRIVATE_ADDRESS")
		if got, _ := w.svc.GetChallenge(w.ctx, a, c.ID); got.Status != registry.ChallengeValid {
			t.Fatalf("the challenge is %s after the refusal, want valid", got.Status)
		}
	})
	t.Run("the DNS name taken since the challenge", func(t *testing.T) {
		b := w.newAgent("beta")
		carol := w.validChallenge(b, "carol@example.test", registry.PurposeRegister)
		w.register(a, carol.DNSName())
		_, err := w.svc.RegisterIdentifier(w.ctx, b, carol.ID, "", "")
		wantErr(t, err, registry.KindAlreadyExists, "IDENTIFIER_TAKEN")
		if _, ok := w.identifier("carol@example.test"); ok {
			t.Fatal("carol@example.test was stored")
		}
		if got, _ := w.svc.GetChallenge(w.ctx, b, carol.ID); got.Status != registry.ChallengeValid {
			t.Fatalf("the challenge is %s after the refusal, want valid", got.Status)
		}
	})
	t.Run("the name taken since the challenge", func(t *testing.T) {
		b := w.newAgent("gamma")
		c1 := w.validChallenge(a, "dave.example.test", registry.PurposeRegister)
		c2 := w.validChallenge(b, "dave.example.test", registry.PurposeRegister)
		if _, err := w.svc.RegisterIdentifier(w.ctx, a, c1.ID, "", ""); err != nil {
			t.Fatal(err)
		}
		_, err := w.svc.RegisterIdentifier(w.ctx, b, c2.ID, "", "")
		wantErr(t, err, registry.KindAlreadyExists, "IDENTIFIER_TAKEN")
	})
	t.Run("a special-use name on an instance outside dev mode", func(t *testing.T) {
		c := w.validChallenge(a, "erin.example.test", registry.PurposeRegister)
		_, err := w.instance(strict).RegisterIdentifier(w.ctx, a, c.ID, "", "")
		wantErr(t, err, registry.KindInvalidArgument, "IDENTIFIER_SPECIAL_USE")
		if _, ok := w.identifier("erin.example.test"); ok {
			t.Fatal("erin.example.test was stored")
		}
		if got, _ := w.svc.GetChallenge(w.ctx, a, c.ID); got.Status != registry.ChallengeValid {
			t.Fatalf("the challenge is %s after the refusal, want valid", got.Status)
		}
	})
	t.Run("Japanese with Latin", func(t *testing.T) {
		if i := w.register(a, "abc日本ひらがな.example.test"); i.UnicodeName != "abc日本ひらがな.example.test" {
			t.Fatalf("registered %+v", i)
		}
	})
}

// TestEmailIdentifiers: an e-mail-form identifier keeps its local part as typed and folds its
// domain; its records live at its DNS name, which no other identifier may have, and a transfer
// proves control of that name.
func TestEmailIdentifiers(t *testing.T) {
	w := newWorld(t)
	a, b := w.newAgent("alpha"), w.newAgent("beta")
	i := w.register(a, "alice.smith+id4me@Example.TEST.")
	if i.Name != "alice.smith+id4me@example.test" || i.DNSName != aliceLabel+".example.test" {
		t.Fatalf("registered %+v", i)
	}
	if got, err := w.svc.GetIdentifier(w.ctx, a, "alice.smith+id4me@EXAMPLE.test"); err != nil || got.Name != i.Name {
		t.Fatalf("GetIdentifier with the domain in another case = %+v, %v", got, err)
	}
	// The local part is as typed: in another case it is another identifier. The DNS name is
	// not the identifier.
	for _, other := range []string{"Alice.Smith+id4me@example.test", aliceLabel + ".example.test"} {
		_, err := w.svc.GetIdentifier(w.ctx, a, other)
		wantErr(t, err, registry.KindNotFound, "IDENTIFIER_NOT_FOUND")
	}
	if r, err := w.svc.Resolve(w.ctx, "alice.smith+id4me@EXAMPLE.test."); err != nil || r.Identifier != i.Name || r.DNSName != i.DNSName {
		t.Fatalf("Resolve = %+v, %v", r, err)
	}
	c := w.validChallenge(b, i.Name, registry.PurposeTransfer)
	if c.RecordName() != "_acme-challenge."+aliceLabel+".example.test." {
		t.Fatalf("transfer challenge record %s, want at the DNS name", c.RecordName())
	}
	if _, err := w.svc.RequestTransfer(w.ctx, b, c.ID, ""); err != nil {
		t.Fatal(err)
	}
	if got := w.mustIdentifier(i.Name); got.AgentID != b.ID || got.DNSName != i.DNSName {
		t.Fatalf("after the transfer: %+v", got)
	}
}

// TestConcurrentRegistrationsOneWinner: of many registrations of one name at once, exactly
// one wins; the others are refused as taken and leave nothing behind.
func TestConcurrentRegistrationsOneWinner(t *testing.T) {
	for _, backend := range testdb.Backends() {
		t.Run(backend.Name, func(t *testing.T) {
			w := newWorldOn(t, backend.DSN(t))
			const n = 16
			agents := make([]registry.Actor, n)
			challenges := make([]registry.Challenge, n)
			for k := range agents {
				agents[k] = w.newAgent("agent" + string(rune('a'+k)))
				challenges[k] = w.validChallenge(agents[k], "contested.example.test", registry.PurposeRegister)
			}
			errs := race(n, func(k int) error {
				_, err := w.svc.RegisterIdentifier(w.ctx, agents[k], challenges[k].ID, "", "")
				return err
			})
			winners := 0
			for k, err := range errs {
				if err == nil {
					winners++
					continue
				}
				wantErr(t, err, registry.KindAlreadyExists, "IDENTIFIER_TAKEN")
				if got, _ := w.svc.GetChallenge(w.ctx, agents[k], challenges[k].ID); got.Status != registry.ChallengeValid {
					t.Fatalf("a losing registration left its challenge %s, want valid", got.Status)
				}
			}
			if winners != 1 {
				t.Fatalf("%d registrations won, want exactly 1", winners)
			}
			if j := w.journal("identifier", "contested.example.test"); len(j) != 1 {
				t.Fatalf("journal of the name %v, want one registration", actions(j))
			}
		})
	}
}

// race runs call(0), …, call(n-1) at once, released together, and returns their errors.
func race(n int, call func(k int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for k := range n {
		wg.Go(func() {
			<-start
			errs[k] = call(k)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// TestSweepChallenges: challenges are kept a while after they expire, so that an agent can
// read why one failed, and deleted after that; transfers made with them keep naming them.
func TestSweepChallenges(t *testing.T) {
	w := newTransferWorld(t)
	unused := w.challenge(w.gainer, "bob.example.test", registry.PurposeRegister)
	w.mustRequest()
	const retention = 24 * time.Hour // the default
	w.clock.Set(unused.ExpireTime.Add(retention))
	if n := w.sweep(w.svc.SweepChallenges); n != 0 {
		t.Fatalf("SweepChallenges at expiry + retention deleted %d, want 0", n)
	}
	if st := w.challengeStatus(unused.ID); st != registry.ChallengeExpired {
		t.Fatalf("an expired challenge reads %s, want expired", st)
	}
	w.clock.Advance(time.Microsecond)
	// The register challenge of alice, the unused one and the transfer challenge.
	if n := w.sweep(w.svc.SweepChallenges); n != 3 {
		t.Fatalf("SweepChallenges after expiry + retention deleted %d, want 3", n)
	}
	for _, id := range []string{unused.ID, w.transfer.ChallengeID} {
		_, err := w.svc.GetChallenge(w.ctx, w.gainer, id)
		wantErr(t, err, registry.KindNotFound, "CHALLENGE_NOT_FOUND")
	}
	if tr, err := w.svc.GetTransfer(w.ctx, w.gainer, w.transfer.ID); err != nil || tr.ChallengeID != w.transfer.ChallengeID {
		t.Fatalf("transfer after the sweep = %+v, %v; want it naming its challenge", tr, err)
	}
	if n := w.sweep(w.svc.SweepChallenges); n != 0 {
		t.Fatalf("a second sweep deleted %d, want 0", n)
	}
}

// TestSpecialUseNameRegisteredBefore: an identifier under a special-use name registered before
// the policy (or under dev mode) still reads, resolves and can be transferred on an instance
// outside dev mode: the policy decides only what is registered anew.
func TestSpecialUseNameRegisteredBefore(t *testing.T) {
	w := newWorld(t, strict)
	a, b := w.newAgent("alpha"), w.newAgent("beta")
	now := w.clock.Now()
	err := w.store.Tx(w.ctx, func(tx registry.Tx) error {
		if err := tx.CreateIdentity(w.ctx, registry.Identity{ID: "id_legacy", SubjectSeed: "seed", CreateTime: now}); err != nil {
			return err
		}
		return tx.CreateIdentifier(w.ctx, registry.Identifier{
			Name: alice, UnicodeName: alice, AgentID: a.ID, IdentityID: "id_legacy", CreateTime: now, UpdateTime: now, Version: 1,
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := w.svc.GetIdentifier(w.ctx, a, alice); err != nil || got.DNSName != alice {
		t.Fatalf("GetIdentifier = %+v, %v", got, err)
	}
	if r, err := w.svc.Resolve(w.ctx, alice); err != nil || r.AgentID != a.ID || r.IdentityID != "id_legacy" {
		t.Fatalf("Resolve = %+v, %v", r, err)
	}
	c := w.validChallenge(b, alice, registry.PurposeTransfer)
	if c.RecordName() != "_acme-challenge."+alice+"." {
		t.Fatalf("transfer challenge record %s", c.RecordName())
	}
	if _, err := w.svc.RequestTransfer(w.ctx, b, c.ID, ""); err != nil {
		t.Fatalf("RequestTransfer: %v", err)
	}
	if got := w.mustIdentifier(alice); got.AgentID != b.ID || got.IdentityID != "id_legacy" {
		t.Fatalf("after the transfer %+v", got)
	}
}
