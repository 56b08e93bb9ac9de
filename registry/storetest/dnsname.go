package storetest

import (
	"fmt"
	"sync"
	"testing"

	"github.com/id4me/id4me-registry/registry"
)

// The DNS name of an e-mail-form identifier as the registry derives it (registry.DNSName);
// the store keeps whatever it is given, and keeps it unique.
const (
	emailName   = "alice@example.org"
	emailDNS    = "2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db.example.org"
	otherEmail  = "Alice@example.org"
	otherDNS    = "3bc51062973c458d5a6f2d8d64a023246354ad7e064b1e4e009ec8a0.example.org"
	domainTaken = "bob.example.org"
)

func newEmailIdentifier(name, dnsName, agentID, identityID string) registry.Identifier {
	i := newIdentifier(name, agentID, identityID)
	i.DNSName = dnsName
	return i
}

// testIdentifierDNSNames: an identifier keeps its DNS name and is found by it; a domain
// identifier's DNS name is its name; no two identifiers share a name or a DNS name, whichever
// form each is in, and a purged identifier frees its DNS name.
func testIdentifierDNSNames(t *testing.T, s registry.Store) {
	ctx := t.Context()
	setup(t, s, []string{"a1", "a2"}, "id1", "id2", "id3", "id4", "id5", "id6", "id7")
	alice := newEmailIdentifier(emailName, emailDNS, "a1", "id1")
	bob := newIdentifier(domainTaken, "a2", "id2") // DNSName left empty: stored as the name
	inTx(t, s, func(tx registry.Tx) error {
		if err := tx.CreateIdentifier(ctx, alice); err != nil {
			return err
		}
		return tx.CreateIdentifier(ctx, bob)
	})
	for _, tc := range []struct {
		by, key string
		want    registry.Identifier
	}{
		{"name", emailName, alice},
		{"DNS name", emailDNS, alice},
		{"name", domainTaken, bob},
		{"DNS name", domainTaken, bob},
	} {
		get := s.GetIdentifier
		if tc.by == "DNS name" {
			get = s.GetIdentifierByDNSName
		}
		got, err := get(ctx, tc.key)
		if err != nil {
			t.Fatalf("by %s %s: %v", tc.by, tc.key, err)
		}
		wantEqual(t, "identifier by "+tc.by+" "+tc.key, got, normIdentifier(tc.want))
	}
	// The DNS name of one identifier is not another's name.
	_, err := s.GetIdentifier(ctx, emailDNS)
	wantErr(t, err, registry.KindNotFound, "IDENTIFIER_NOT_FOUND")
	_, err = s.GetIdentifierByDNSName(ctx, emailName)
	wantErr(t, err, registry.KindNotFound, "IDENTIFIER_NOT_FOUND")
	_, err = s.GetIdentifierByDNSName(ctx, otherDNS)
	wantErr(t, err, registry.KindNotFound, "IDENTIFIER_NOT_FOUND")
	list, err := s.ListIdentifiers(ctx, "a1", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "ListIdentifiers(a1)", list, []registry.Identifier{normIdentifier(alice)})

	for _, tc := range []struct {
		name string
		i    registry.Identifier
	}{
		{"a domain identifier equal to an e-mail identifier's DNS name", newIdentifier(emailDNS, "a2", "id3")},
		{"another e-mail identifier with that DNS name", newEmailIdentifier("alice2@example.org", emailDNS, "a2", "id3")},
		{"an e-mail identifier whose DNS name is a domain identifier", newEmailIdentifier("carol@example.org", domainTaken, "a1", "id3")},
		{"the same e-mail identifier with another DNS name", newEmailIdentifier(emailName, otherDNS, "a2", "id3")},
	} {
		err := s.Tx(ctx, func(tx registry.Tx) error { return tx.CreateIdentifier(ctx, tc.i) })
		if registry.KindOf(err) != registry.KindAlreadyExists || registry.ReasonOf(err) != registry.ReasonIdentifierTaken {
			t.Fatalf("%s: CreateIdentifier = %v, want IDENTIFIER_TAKEN", tc.name, err)
		}
	}
	if _, err := s.GetIdentity(ctx, "id3"); err != nil {
		t.Fatal(err)
	}
	// Another local part, another DNS name: both kept.
	other := newEmailIdentifier(otherEmail, otherDNS, "a2", "id4")
	inTx(t, s, func(tx registry.Tx) error { return tx.CreateIdentifier(ctx, other) })
	got, err := s.GetIdentifierByDNSName(ctx, otherDNS)
	if err != nil || got.Name != otherEmail {
		t.Fatalf("by DNS name %s: %+v, %v", otherDNS, got, err)
	}

	// An update leaves the DNS name alone; a purge frees it for an identifier of the other form.
	moved := alice
	moved.AgentID, moved.Version = "a2", 2
	inTx(t, s, func(tx registry.Tx) error { return tx.UpdateIdentifier(ctx, moved) })
	if got, err := s.GetIdentifierByDNSName(ctx, emailDNS); err != nil || got.AgentID != "a2" || got.DNSName != emailDNS {
		t.Fatalf("after update: %+v, %v", got, err)
	}
	inTx(t, s, func(tx registry.Tx) error { return tx.DeleteIdentifier(ctx, emailName, 2) })
	_, err = s.GetIdentifierByDNSName(ctx, emailDNS)
	wantErr(t, err, registry.KindNotFound, "IDENTIFIER_NOT_FOUND")
	domain := newIdentifier(emailDNS, "a1", "id5")
	inTx(t, s, func(tx registry.Tx) error { return tx.CreateIdentifier(ctx, domain) })
	got, err = s.GetIdentifierByDNSName(ctx, emailDNS)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "the domain identifier registered after the purge", got, normIdentifier(domain))
}

// testConcurrentDNSNameRegistration: of concurrent registrations of a domain identifier and of
// e-mail-form identifiers that share its DNS name, exactly one succeeds.
func testConcurrentDNSNameRegistration(t *testing.T, s registry.Store) {
	ctx := t.Context()
	setup(t, s, []string{"a1"})
	const n = 16
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			identity := fmt.Sprint("id", i)
			// Even ones the domain form, odd ones e-mail forms (a hash collision stands in for
			// the second local part).
			id := newIdentifier(emailDNS, "a1", identity)
			if i%2 == 1 {
				id = newEmailIdentifier(fmt.Sprintf("alice%d@example.org", i), emailDNS, "a1", identity)
			}
			errs[i] = s.Tx(ctx, func(tx registry.Tx) error {
				if err := tx.CreateIdentity(ctx, newIdentity(identity)); err != nil {
					return err
				}
				return tx.CreateIdentifier(ctx, id)
			})
		})
	}
	close(start)
	wg.Wait()
	winners := 0
	for _, err := range errs {
		if err == nil {
			winners++
			continue
		}
		wantErr(t, err, registry.KindAlreadyExists, "IDENTIFIER_TAKEN")
	}
	if winners != 1 {
		t.Fatalf("%d registrations succeeded, want 1", winners)
	}
	if l, err := s.ListIdentifiers(ctx, "a1", "", 100); err != nil || len(l) != 1 || l[0].DNSName != emailDNS {
		t.Fatalf("identifiers of a1 = %+v, %v; want the winner", l, err)
	}
}
