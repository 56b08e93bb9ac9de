package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/authority"
	"github.com/id4me/id4me-registry/registry"
)

// testCredentialLinkVoiding: a new link voids the identity's links that can still be used,
// and nothing else; a void link can be neither prepared nor redeemed; the binding a link is
// made with comes back.
func testCredentialLinkVoiding(t *testing.T, s authority.Store) {
	ctx := t.Context()
	older := newLink("older", alice, t0)
	older.AgentID, older.IdentifierGeneration, older.AgentGeneration = "agent7", 3, 5
	bobs := newLink("bobs", bob, t0)
	used := newLink("used", alice, t0)
	for _, l := range []authority.CredentialLink{older, bobs, used} {
		must(t, s.CreateCredentialLink(ctx, l, nil))
	}
	// used voided older when it was made.
	older.VoidTime = used.CreateTime
	wantLink(t, s, older)
	wantEqual(t, "Binding", older.Binding(), registry.CredentialLinkBinding{AgentID: "agent7", IdentifierGeneration: 3, AgentGeneration: 5})
	must(t, s.RedeemCredentialLink(ctx, used.TokenHash, t0.Add(time.Minute), newCredential(alice), nil))
	used.UseTime = t0.Add(time.Minute)

	newer := newLink("newer", alice, t0.Add(time.Hour))
	must(t, s.CreateCredentialLink(ctx, newer, nil))
	// A used link stays as it was, a void one keeps its void time, another identity's link
	// is left alone.
	wantLink(t, s, used)
	wantLink(t, s, older)
	wantLink(t, s, bobs)
	wantLink(t, s, newer)

	wantErr(t, "RedeemCredentialLink of a void link", s.RedeemCredentialLink(ctx, older.TokenHash, t0.Add(2*time.Minute), newCredential(alice), nil), authority.ErrConflict)
	wantErr(t, "SetCredentialLinkPending of a void link", s.SetCredentialLinkPending(ctx, older.TokenHash, "$argon2id$x", "SECRET"), authority.ErrConflict)
	wantLink(t, s, older)
	wantCredential(t, s, newCredential(alice))

	// A link made again under a taken token changes nothing: the others are not voided.
	wantErr(t, "CreateCredentialLink of a taken token", s.CreateCredentialLink(ctx, newLink("newer", alice, t0.Add(2*time.Hour)), nil), authority.ErrConflict)
	wantLink(t, s, newer)
}

// testRedeemEndsOldCredentials: new credentials end the identity's sessions, forget its
// half-done logins, and revoke its grants and access tokens; its consents, and everything
// of other identities, stay.
func testRedeemEndsOldCredentials(t *testing.T, s authority.Store) {
	ctx := t.Context()
	must(t, s.CreateClient(ctx, newClient("c1")))
	setCredentials(t, s, newCredential(alice), t0)

	sessions := []authority.Session{newSession("alice-1", alice), newSession("alice-2", alice), newSession("bobs", bob)}
	for _, ss := range sessions {
		must(t, s.CreateSession(ctx, ss))
	}
	unused := newGrant("g-unused", "code-unused", "c1", alice)
	redeemed := newGrant("g-used", "code-used", "c1", alice)
	bobsGrant := newGrant("g-bob", "code-bob", "c1", bob)
	gone := newGrant("g-gone", "code-gone", "c1", alice)
	unused.ExpireTime, redeemed.ExpireTime, bobsGrant.ExpireTime = t0.Add(2*time.Hour), t0.Add(2*time.Hour), t0.Add(2*time.Hour)
	for _, g := range []authority.Grant{unused, redeemed, bobsGrant, gone} {
		must(t, s.CreateGrant(ctx, g))
	}
	_, err := s.RedeemGrant(ctx, redeemed.CodeHash, t0.Add(2*time.Second))
	must(t, err)
	redeemed.UseTime = t0.Add(2 * time.Second)
	token := newAccessToken("alice-token", "g-used", alice)
	// A token whose grant has gone already (grants expire before their tokens).
	orphan := newAccessToken("alice-orphan", "g-gone", alice)
	revokedBefore := newAccessToken("alice-revoked", "g-used", alice)
	revokedBefore.RevokeTime = t0.Add(3 * time.Second)
	bobsToken := newAccessToken("bob-token", "g-bob", bob)
	for _, at := range []authority.AccessToken{token, orphan, revokedBefore, bobsToken} {
		must(t, s.CreateAccessToken(ctx, at))
	}
	// g-gone expires before its token: only the grant goes.
	if n, err := s.DeleteExpired(ctx, t0.Add(2*time.Minute)); err != nil || n != 1 {
		t.Fatalf("DeleteExpired of the orphan's grant = %d, %v; want 1", n, err)
	}
	consent := authority.Consent{ClientID: "c1", IdentityID: alice, Scopes: []string{"openid"}, Claims: []string{"email"}, UpdateTime: t0}
	must(t, s.PutConsent(ctx, consent))
	halfDone := newAuthRequest("ar-alice")
	halfDone.PendingIdentityID, halfDone.PendingIdentifier, halfDone.PendingAMR = alice, "alice.example", []string{"pwd"}
	bobsRequest := newAuthRequest("ar-bob")
	bobsRequest.PendingIdentityID, bobsRequest.PendingIdentifier, bobsRequest.PendingAMR = bob, "bob.example", []string{"pwd"}
	for _, r := range []authority.AuthRequest{halfDone, bobsRequest} {
		must(t, s.CreateAuthRequest(ctx, r))
	}

	reset := newLink("reset", alice, t0.Add(time.Hour))
	reset.Purpose = "reset"
	must(t, s.CreateCredentialLink(ctx, reset, nil))
	when := t0.Add(90 * time.Minute)
	fresh := newCredential(alice)
	fresh.PasswordHash, fresh.TOTPSecret, fresh.UpdateTime = "$argon2id$fresh", "", when
	must(t, s.RedeemCredentialLink(ctx, reset.TokenHash, when, fresh, nil))
	wantCredential(t, s, fresh)

	for _, ss := range sessions[:2] {
		_, err := s.GetSession(ctx, ss.IDHash)
		wantErr(t, "GetSession of a session from before", err, authority.ErrNotFound)
	}
	got, err := s.GetSession(ctx, sessions[2].IDHash)
	must(t, err)
	wantEqual(t, "another identity's session", got, normSession(sessions[2]))

	_, err = s.RedeemGrant(ctx, unused.CodeHash, when)
	wantErr(t, "RedeemGrant of a code from before", err, authority.ErrNotFound)
	g, err := s.RedeemGrant(ctx, redeemed.CodeHash, when)
	wantErr(t, "RedeemGrant of a used code from before", err, authority.ErrConflict)
	redeemed.RevokeTime = when
	wantEqual(t, "a used grant from before", g, normGrant(redeemed))
	g, err = s.RedeemGrant(ctx, bobsGrant.CodeHash, when)
	must(t, err)
	if !g.RevokeTime.IsZero() {
		t.Fatalf("another identity's grant was revoked: %+v", g)
	}

	token.RevokeTime, orphan.RevokeTime = when, when
	wantAccessToken(t, s, token)
	wantAccessToken(t, s, orphan)
	wantAccessToken(t, s, revokedBefore)
	wantAccessToken(t, s, bobsToken)
	// A token issued later from a grant of before is born revoked.
	late := newAccessToken("alice-late", "g-used", alice)
	must(t, s.CreateAccessToken(ctx, late))
	late.RevokeTime = when
	wantAccessToken(t, s, late)

	c, err := s.GetConsent(ctx, "c1", alice)
	must(t, err)
	consent.UpdateTime = norm(consent.UpdateTime)
	wantEqual(t, "the consent", c, consent)

	halfDone.PendingIdentityID, halfDone.PendingIdentifier, halfDone.PendingAMR = "", "", nil
	wantAuthRequest(t, s, halfDone)
	wantAuthRequest(t, s, bobsRequest)
}

// testRedeemCredentialLinkCheck: the check runs in the redemption's transaction with a
// reader of the registry's state; when it refuses, nothing changes.
func testRedeemCredentialLinkCheck(t *testing.T, s authority.Store) {
	ctx := t.Context()
	old := newCredential(alice)
	setCredentials(t, s, old, t0)
	sess := newSession("alice", alice)
	must(t, s.CreateSession(ctx, sess))
	l := newLink("reset", alice, t0.Add(time.Hour))
	must(t, s.CreateCredentialLink(ctx, l, nil))
	fresh := newCredential(alice)
	fresh.PasswordHash = "$argon2id$fresh"
	when := t0.Add(90 * time.Minute)

	refused := errors.New("the registry no longer holds the link's binding")
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"its own error", refused},
		{"ErrConflict", fmt.Errorf("void: %w", authority.ErrConflict)},
	} {
		err := s.RedeemCredentialLink(ctx, l.TokenHash, when, fresh, func(context.Context, registry.Tx) error { return tc.err })
		wantErr(t, "RedeemCredentialLink refused by its check, "+tc.name, err, tc.err)
		wantLink(t, s, l)
		wantCredential(t, s, old)
		if _, err := s.GetSession(ctx, sess.IDHash); err != nil {
			t.Fatalf("the session after a refused redemption: %v", err)
		}
	}

	var seen registry.Identity
	err := s.RedeemCredentialLink(ctx, l.TokenHash, when, fresh, func(ctx context.Context, r registry.Tx) error {
		var err error
		seen, err = r.GetIdentity(ctx, alice)
		return err
	})
	must(t, err)
	if seen.ID != alice {
		t.Fatalf("the check read identity %+v through its reader, want %s", seen, alice)
	}
	wantCredential(t, s, fresh)
}

// testConcurrentCredentialLinks: of links of one identity made at the same time, exactly
// one works.
func testConcurrentCredentialLinks(t *testing.T, s authority.Store) {
	ctx := t.Context()
	errs := concurrently(racers, func(i int) error {
		return s.CreateCredentialLink(ctx, newLink(fmt.Sprintf("link%d", i), alice, t0.Add(time.Duration(i)*time.Second)), nil)
	})
	live := -1
	for i, err := range errs {
		must(t, err)
		l, err := s.GetCredentialLink(ctx, hash(fmt.Sprintf("link%d", i)))
		must(t, err)
		if l.VoidTime.IsZero() {
			if live >= 0 {
				t.Fatalf("links %d and %d both work", live, i)
			}
			live = i
		}
	}
	if live < 0 {
		t.Fatal("no link works")
	}
	// Within every link's hour.
	must(t, s.RedeemCredentialLink(ctx, hash(fmt.Sprintf("link%d", live)), t0.Add(30*time.Minute), newCredential(alice), nil))
}

// testCreateCredentialLinkWithin: what runs with a new link runs in its transaction, with the
// registry's side of it; when it fails, the link is not stored and the older one stays good.
func testCreateCredentialLinkWithin(t *testing.T, s authority.Store) {
	ctx := t.Context()
	older := newLink("older", alice, t0)
	must(t, s.CreateCredentialLink(ctx, older, nil))

	failed := errors.New("the journal could not be written")
	l := newLink("newer", alice, t0.Add(time.Hour))
	err := s.CreateCredentialLink(ctx, l, func(context.Context, registry.Tx) error { return failed })
	wantErr(t, "CreateCredentialLink whose within fails", err, failed)
	_, err = s.GetCredentialLink(ctx, l.TokenHash)
	wantErr(t, "GetCredentialLink of a link whose within failed", err, authority.ErrNotFound)
	wantLink(t, s, older)

	var seen registry.Identity
	must(t, s.CreateCredentialLink(ctx, l, func(ctx context.Context, tx registry.Tx) error {
		var err error
		seen, err = tx.GetIdentity(ctx, alice)
		return err
	}))
	if seen.ID != alice {
		t.Fatalf("within read identity %+v through its transaction, want %s", seen, alice)
	}
	wantLink(t, s, l)
	older.VoidTime = l.CreateTime
	wantLink(t, s, older)
}
