package storetest

import (
	"testing"
	"time"

	"github.com/id4me/id4me-registry/authority"
)

// testAccountSessions: an identity's sessions valid at a time, newest first, with the
// browser and address they started from; other identities' and expired ones are left out.
func testAccountSessions(t *testing.T, s authority.Store) {
	ctx := t.Context()
	old, recent, bobs, expired := newSession("old", alice), newSession("recent", alice), newSession("bob", bob), newSession("expired", alice)
	old.UserAgent, old.Address = "Firefox", "192.0.2.1"
	recent.CreateTime = old.CreateTime.Add(time.Minute)
	expired.ExpireTime = t0.Add(time.Minute)
	for _, x := range []authority.Session{old, recent, bobs, expired} {
		must(t, s.CreateSession(ctx, x))
	}
	got, err := s.Sessions(ctx, alice, t0.Add(time.Hour))
	must(t, err)
	wantEqual(t, "Sessions", got, []authority.Session{normSession(recent), normSession(old)})
	got, err = s.Sessions(ctx, carol, t0)
	must(t, err)
	if len(got) != 0 {
		t.Fatalf("Sessions of an identity without any: %v", got)
	}
}

// testRevokeConsent: revoking a consent deletes it, deletes the unused codes of that client
// and identity, and revokes its used grants and their tokens; other clients' and
// identities' stay.
func testRevokeConsent(t *testing.T, s authority.Store) {
	ctx := t.Context()
	must(t, s.CreateClient(ctx, newClient("c1")))
	must(t, s.CreateClient(ctx, newClient("c2")))
	for _, c := range []authority.Consent{
		{ClientID: "c1", IdentityID: alice, Scopes: []string{"openid"}, UpdateTime: t0},
		{ClientID: "c2", IdentityID: alice, Scopes: []string{"openid"}, UpdateTime: t0.Add(time.Minute)},
		{ClientID: "c1", IdentityID: bob, Scopes: []string{"openid"}, UpdateTime: t0},
	} {
		must(t, s.PutConsent(ctx, c))
	}
	got, err := s.Consents(ctx, alice)
	must(t, err)
	if len(got) != 2 || got[0].ClientID != "c2" || got[1].ClientID != "c1" {
		t.Fatalf("Consents of alice %+v, want c2 then c1", got)
	}

	used, unused, other, bobs := newGrant("g-used", "code-used", "c1", alice), newGrant("g-unused", "code-unused", "c1", alice), newGrant("g-other", "code-other", "c2", alice), newGrant("g-bob", "code-bob", "c1", bob)
	for _, g := range []authority.Grant{used, unused, other, bobs} {
		must(t, s.CreateGrant(ctx, g))
	}
	for _, code := range []string{"code-used", "code-other", "code-bob"} {
		_, err := s.RedeemGrant(ctx, hash(code), t0.Add(time.Second))
		must(t, err)
	}
	tok, otherTok, bobTok := newAccessToken("tok", "g-used", alice), newAccessToken("tok-other", "g-other", alice), newAccessToken("tok-bob", "g-bob", bob)
	otherTok.ClientID = "c2"
	for _, x := range []authority.AccessToken{tok, otherTok, bobTok} {
		must(t, s.CreateAccessToken(ctx, x))
	}

	now := t0.Add(time.Minute)
	must(t, s.RevokeConsent(ctx, "c1", alice, now))
	_, err = s.GetConsent(ctx, "c1", alice)
	wantErr(t, "GetConsent after RevokeConsent", err, authority.ErrNotFound)
	at, err := s.GetAccessToken(ctx, tok.TokenHash)
	must(t, err)
	wantEqual(t, "RevokeTime of the client's token", at.RevokeTime, norm(now))
	g, err := s.GetGrant(ctx, used.CodeHash)
	must(t, err)
	wantEqual(t, "RevokeTime of the client's used grant", g.RevokeTime, norm(now))
	_, err = s.GetGrant(ctx, unused.CodeHash)
	wantErr(t, "GetGrant of the client's unused code", err, authority.ErrNotFound)
	for _, h := range [][]byte{otherTok.TokenHash, bobTok.TokenHash} {
		at, err := s.GetAccessToken(ctx, h)
		must(t, err)
		if !at.RevokeTime.IsZero() {
			t.Fatalf("RevokeConsent revoked the token of client %s, identity %s", at.ClientID, at.IdentityID)
		}
	}
	if _, err := s.GetConsent(ctx, "c1", bob); err != nil {
		t.Fatalf("another identity's consent: %v", err)
	}
	wantErr(t, "RevokeConsent again", s.RevokeConsent(ctx, "c1", alice, now), authority.ErrNotFound)
}

// testChangePassword: a password changes only from the hash it was read as.
func testChangePassword(t *testing.T, s authority.Store) {
	ctx := t.Context()
	c := newCredential(alice)
	setCredentials(t, s, c, t0)
	now := t0.Add(time.Hour)
	wantErr(t, "ChangePassword from another hash", s.ChangePassword(ctx, alice, "$argon2id$stale", "$argon2id$new", now), authority.ErrConflict)
	wantErr(t, "ChangePassword without credentials", s.ChangePassword(ctx, bob, "x", "y", now), authority.ErrNotFound)
	must(t, s.ChangePassword(ctx, alice, c.PasswordHash, "$argon2id$new", now))
	c.PasswordHash, c.UpdateTime = "$argon2id$new", now
	wantCredential(t, s, c)

	// The TOTP secret changes on its own.
	later := now.Add(time.Hour)
	must(t, s.SetTOTPSecret(ctx, alice, nil, "", 0, later))
	c.TOTPSecret, c.TOTPLastStep, c.UpdateTime = "", 0, later
	wantCredential(t, s, c)
	must(t, s.SetTOTPSecret(ctx, alice, nil, "NEWSECRET", 42, later))
	c.TOTPSecret, c.TOTPLastStep = "NEWSECRET", 42
	wantCredential(t, s, c)
	wantErr(t, "SetTOTPSecret without credentials", s.SetTOTPSecret(ctx, bob, nil, "X", 1, later), authority.ErrNotFound)
}

// testRecoveryCodes: codes are replaced as a set, each is good once and only for its
// identity, and a redeemed credential link deletes them.
func testRecoveryCodes(t *testing.T, s authority.Store) {
	ctx := t.Context()
	setCredentials(t, s, newCredential(alice), t0)
	must(t, s.SetRecoveryCodes(ctx, alice, nil, [][]byte{hash("old")}, t0))
	must(t, s.SetRecoveryCodes(ctx, alice, nil, [][]byte{hash("r1"), hash("r2")}, t0))
	left := func(want int) {
		t.Helper()
		n, err := s.RecoveryCodesLeft(ctx, alice)
		must(t, err)
		if n != want {
			t.Fatalf("RecoveryCodesLeft %d, want %d", n, want)
		}
	}
	left(2)
	wantErr(t, "UseRecoveryCode of a replaced code", s.UseRecoveryCode(ctx, alice, hash("old"), t0), authority.ErrNotFound)
	wantErr(t, "UseRecoveryCode of another identity's code", s.UseRecoveryCode(ctx, bob, hash("r1"), t0), authority.ErrNotFound)
	must(t, s.UseRecoveryCode(ctx, alice, hash("r1"), t0))
	wantErr(t, "UseRecoveryCode again", s.UseRecoveryCode(ctx, alice, hash("r1"), t0), authority.ErrNotFound)
	left(1)
	wantErr(t, "SetRecoveryCodes of a missing identity", s.SetRecoveryCodes(ctx, "id_nobody", nil, [][]byte{hash("x")}, t0), authority.ErrNotFound)

	l := newLink("reset", alice, t0.Add(time.Hour))
	must(t, s.CreateCredentialLink(ctx, l, nil))
	must(t, s.RedeemCredentialLink(ctx, l.TokenHash, t0.Add(time.Hour), newCredential(alice), nil))
	left(0)
}

// testAccountWritesNeedTheirSession: a passkey, a TOTP secret or recovery codes the account
// page sets for a session are stored only while that session lasts; once it has ended (as
// new credentials set through a link end every session), each is refused with
// ErrSessionEnded and nothing changes.
func testAccountWritesNeedTheirSession(t *testing.T, s authority.Store) {
	ctx := t.Context()
	c := newCredential(alice)
	setCredentials(t, s, c, t0)
	sess := newSession("account", alice)
	must(t, s.CreateSession(ctx, sess))
	p := newPasskey("p1", alice, t0)
	p.SessionIDHash = sess.IDHash
	must(t, s.AddPasskey(ctx, p))
	must(t, s.SetTOTPSecret(ctx, alice, sess.IDHash, "SECRET", 1, t0))
	must(t, s.SetRecoveryCodes(ctx, alice, sess.IDHash, [][]byte{hash("k1")}, t0))

	must(t, s.DeleteSession(ctx, sess.IDHash))
	late := newPasskey("p2", alice, t0)
	late.SessionIDHash = sess.IDHash
	wantErr(t, "AddPasskey for an ended session", s.AddPasskey(ctx, late), authority.ErrSessionEnded)
	wantErr(t, "SetTOTPSecret for an ended session", s.SetTOTPSecret(ctx, alice, sess.IDHash, "", 0, t0), authority.ErrSessionEnded)
	wantErr(t, "SetRecoveryCodes for an ended session", s.SetRecoveryCodes(ctx, alice, sess.IDHash, [][]byte{hash("k2")}, t0), authority.ErrSessionEnded)
	p.SessionIDHash = nil // not stored
	wantPasskeys(t, s, alice, p)
	got, err := s.GetHolderCredential(ctx, alice)
	must(t, err)
	if got.TOTPSecret != "SECRET" {
		t.Fatalf("TOTP secret %q after a refused change, want SECRET", got.TOTPSecret)
	}
	n, err := s.RecoveryCodesLeft(ctx, alice)
	must(t, err)
	if n != 1 {
		t.Fatalf("%d recovery codes after a refused change, want 1", n)
	}
	// Another identity's session does not stand for alice's.
	bobs := newSession("bobs", bob)
	must(t, s.CreateSession(ctx, bobs))
	wantErr(t, "SetTOTPSecret with another identity's session", s.SetTOTPSecret(ctx, alice, bobs.IDHash, "", 0, t0), authority.ErrSessionEnded)
}
