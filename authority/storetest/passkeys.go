package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/authority"
)

func newPasskey(id, identityID string, created time.Time) authority.Passkey {
	return authority.Passkey{
		CredentialID: []byte("credential " + id), IdentityID: identityID, Identifier: identityID + ".example",
		Name: "Key " + id, Credential: []byte(`{"id":"` + id + `"}`), CreateTime: created,
	}
}

func normPasskey(p authority.Passkey) authority.Passkey {
	p.CreateTime, p.UseTime = norm(p.CreateTime), norm(p.UseTime)
	return p
}

func wantPasskeys(t *testing.T, s authority.Store, identityID string, want ...authority.Passkey) {
	t.Helper()
	got, err := s.Passkeys(t.Context(), identityID)
	must(t, err)
	for k := range want {
		want[k] = normPasskey(want[k])
	}
	if len(got) == 0 && len(want) == 0 {
		return
	}
	wantEqual(t, "Passkeys of "+identityID, got, want)
}

// testPasskeys: passkeys round-trip, per identity, oldest first; a credential ID is
// taken once; use updates the record; deletion takes only the identity's own.
func testPasskeys(t *testing.T, s authority.Store) {
	ctx := t.Context()
	a1, a2, b1 := newPasskey("a1", alice, t0), newPasskey("a2", alice, t0.Add(time.Minute)), newPasskey("b1", bob, t0)
	for _, p := range []authority.Passkey{a2, a1, b1} {
		must(t, s.AddPasskey(ctx, p))
	}
	wantPasskeys(t, s, alice, a1, a2)
	wantPasskeys(t, s, bob, b1)
	wantPasskeys(t, s, carol)
	taken := newPasskey("a1", bob, t0)
	wantErr(t, "AddPasskey of a taken credential ID", s.AddPasskey(ctx, taken), authority.ErrConflict)
	wantErr(t, "AddPasskey of a missing identity", s.AddPasskey(ctx, newPasskey("x", "id_nobody", t0)), authority.ErrNotFound)

	got, err := s.GetPasskey(ctx, a1.CredentialID)
	must(t, err)
	wantEqual(t, "GetPasskey", got, normPasskey(a1))
	_, err = s.GetPasskey(ctx, []byte("nothing"))
	wantErr(t, "GetPasskey of a missing passkey", err, authority.ErrNotFound)

	used := t0.Add(time.Hour)
	was := a1.Credential
	must(t, s.UsePasskey(ctx, a1.CredentialID, was, []byte(`{"id":"a1","signCount":2}`), used))
	a1.Credential, a1.UseTime = []byte(`{"id":"a1","signCount":2}`), used
	wantPasskeys(t, s, alice, a1, a2)
	// A second login checked against the record before the first one's: a clone's.
	wantErr(t, "UsePasskey of a record used meanwhile", s.UsePasskey(ctx, a1.CredentialID, was, []byte(`{"id":"a1","signCount":2}`), used), authority.ErrConflict)
	wantPasskeys(t, s, alice, a1, a2)
	wantErr(t, "UsePasskey of a missing passkey", s.UsePasskey(ctx, []byte("nothing"), nil, nil, used), authority.ErrNotFound)

	wantErr(t, "DeletePasskey of another identity's", s.DeletePasskey(ctx, bob, a1.CredentialID), authority.ErrNotFound)
	must(t, s.DeletePasskey(ctx, alice, a1.CredentialID))
	wantErr(t, "DeletePasskey again", s.DeletePasskey(ctx, alice, a1.CredentialID), authority.ErrNotFound)
	wantPasskeys(t, s, alice, a2)
	wantPasskeys(t, s, bob, b1)
}

// testLinkPasskeys: a passkey added on a credential link waits for it: it does not log in,
// and only an unused, unvoided link takes one. Redeeming the link makes it work and deletes
// the identity's other passkeys (new credentials replace the old ones entirely), leaving
// other identities' alone.
func testLinkPasskeys(t *testing.T, s authority.Store) {
	ctx := t.Context()
	setCredentials(t, s, newCredential(alice), t0)
	old, bobs := newPasskey("old", alice, t0), newPasskey("bob", bob, t0)
	must(t, s.AddPasskey(ctx, old))
	must(t, s.AddPasskey(ctx, bobs))

	now := t0.Add(time.Hour)
	l := newLink("reset", alice, now)
	l.Purpose = "reset"
	must(t, s.CreateCredentialLink(ctx, l, nil))
	fresh := newPasskey("fresh", alice, now)
	fresh.LinkHash = l.TokenHash
	must(t, s.AddPasskey(ctx, fresh))
	got, err := s.LinkPasskeys(ctx, l.TokenHash)
	must(t, err)
	wantEqual(t, "LinkPasskeys", got, []authority.Passkey{normPasskey(fresh)})
	_, err = s.GetPasskey(ctx, fresh.CredentialID)
	wantErr(t, "GetPasskey of a passkey waiting for its link", err, authority.ErrNotFound)
	wantPasskeys(t, s, alice, old)

	// A newer link voids l: it takes no passkey any more.
	newer := newLink("newer", alice, now.Add(time.Second))
	must(t, s.CreateCredentialLink(ctx, newer, nil))
	late := newPasskey("late", alice, now)
	late.LinkHash = l.TokenHash
	wantErr(t, "AddPasskey on a void link", s.AddPasskey(ctx, late), authority.ErrConflict)

	fresh2 := newPasskey("fresh2", alice, now.Add(time.Second))
	fresh2.LinkHash = newer.TokenHash
	must(t, s.AddPasskey(ctx, fresh2))
	reset := newCredential(alice)
	reset.PasswordHash = "$argon2id$new"
	must(t, s.RedeemCredentialLink(ctx, newer.TokenHash, now.Add(time.Minute), reset, nil))
	fresh2.LinkHash = nil
	wantPasskeys(t, s, alice, fresh2)
	wantPasskeys(t, s, bob, bobs)
	_, err = s.GetPasskey(ctx, old.CredentialID)
	wantErr(t, "GetPasskey of a passkey a reset deleted", err, authority.ErrNotFound)
	_, err = s.GetPasskey(ctx, fresh.CredentialID)
	wantErr(t, "GetPasskey of a passkey of a voided link", err, authority.ErrNotFound)
	wantErr(t, "AddPasskey on a used link", s.AddPasskey(ctx, late), authority.ErrConflict)
}

// testCeremonies: a ceremony round-trips and is taken once, by one of any number of
// concurrent takers; DeleteExpired sweeps expired ones.
func testCeremonies(t *testing.T, s authority.Store) {
	ctx := t.Context()
	c := authority.Ceremony{IDHash: hash("ceremony"), BrowserHash: hash("browser"), IdentityID: alice, Purpose: "login", Session: []byte(`{"challenge":"x"}`), ExpireTime: t0.Add(time.Minute)}
	must(t, s.CreateCeremony(ctx, c))
	wantErr(t, "CreateCeremony of a taken ID", s.CreateCeremony(ctx, c), authority.ErrConflict)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		taken  int
		gotten authority.Ceremony
	)
	for range 8 {
		wg.Go(func() {
			got, err := s.TakeCeremony(ctx, c.IDHash)
			if err == nil {
				mu.Lock()
				taken++
				gotten = got
				mu.Unlock()
				return
			}
			wantErr(t, "TakeCeremony of a taken ceremony", err, authority.ErrNotFound)
		})
	}
	wg.Wait()
	if taken != 1 {
		t.Fatalf("%d concurrent TakeCeremony calls took the ceremony, want 1", taken)
	}
	c.ExpireTime = norm(c.ExpireTime)
	wantEqual(t, "TakeCeremony", gotten, c)

	c2 := c
	c2.IDHash = hash("ceremony 2")
	must(t, s.CreateCeremony(ctx, c2))
	n, err := s.DeleteExpired(ctx, t0.Add(2*time.Minute))
	must(t, err)
	if n < 1 {
		t.Fatalf("DeleteExpired deleted %d rows, want the expired ceremony", n)
	}
	_, err = s.TakeCeremony(ctx, c2.IDHash)
	wantErr(t, "TakeCeremony of an expired, swept ceremony", err, authority.ErrNotFound)
}
