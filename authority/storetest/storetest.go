// Package storetest is the conformance suite of authority.Store: every backend runs it, so
// they all keep the contract the authority relies on.
package storetest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/authority"
)

// IdentityIDs are the identities the suite refers to. A store that keeps holders'
// credentials, credential links, consents or grants only for identities it knows (the SQL
// store references the registry's identities) must know these when open returns it.
var IdentityIDs = []string{"id_alice", "id_bob", "id_carol"}

// Run runs the suite. open returns a new, empty store (but for IdentityIDs) for one subtest
// and arranges for its closing (t.Cleanup); it is called from parallel subtests.
func Run(t *testing.T, open func(t *testing.T) authority.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s authority.Store)
	}{
		{"SigningKeys", testSigningKeys},
		{"SigningKeyRotation", testSigningKeyRotation},
		{"SigningKeyConflict", testSigningKeyConflict},
		{"ReplaceSigningKeyPrivateJWK", testReplaceSigningKeyPrivateJWK},
		{"Clients", testClients},
		{"UpdateClient", testUpdateClient},
		{"DeleteClient", testDeleteClient},
		{"InitialAccessTokens", testInitialAccessTokens},
		{"UseInitialAccessToken", testUseInitialAccessToken},
		{"CredentialLinks", testCredentialLinks},
		{"RedeemCredentialLink", testRedeemCredentialLink},
		{"LoginThrottles", testLoginThrottles},
		{"SharedLoginThrottles", testSharedLoginThrottles},
		{"ReleaseLoginAttempts", testReleaseLoginAttempts},
		{"KnownDevices", testKnownDevices},
		{"RedeemForgetsKnownDevices", testRedeemForgetsKnownDevices},
		{"CredentialLinkVoiding", testCredentialLinkVoiding},
		{"CreateCredentialLinkWithin", testCreateCredentialLinkWithin},
		{"RedeemEndsOldCredentials", testRedeemEndsOldCredentials},
		{"RedeemCredentialLinkCheck", testRedeemCredentialLinkCheck},
		{"TOTPSteps", testTOTPSteps},
		{"Passkeys", testPasskeys},
		{"LinkPasskeys", testLinkPasskeys},
		{"Ceremonies", testCeremonies},
		{"AccountSessions", testAccountSessions},
		{"RevokeConsent", testRevokeConsent},
		{"ChangePassword", testChangePassword},
		{"RecoveryCodes", testRecoveryCodes},
		{"AccountWritesNeedTheirSession", testAccountWritesNeedTheirSession},
		{"AuthRequests", testAuthRequests},
		{"Sessions", testSessions},
		{"Consents", testConsents},
		{"Grants", testGrants},
		{"AccessTokens", testAccessTokens},
		{"RevokeGrant", testRevokeGrant},
		{"RevokeAccessToken", testRevokeAccessToken},
		{"BackchannelLogoutQueue", testBackchannelLogoutQueue},
		{"DeleteExpired", testDeleteExpired},
		{"ConcurrentRedeemGrant", testConcurrentRedeemGrant},
		{"ConcurrentRedeemCredentialLink", testConcurrentRedeemCredentialLink},
		{"ConcurrentCredentialLinks", testConcurrentCredentialLinks},
		{"ConcurrentTOTPStep", testConcurrentTOTPStep},
		{"ConcurrentLoginAttempts", testConcurrentLoginAttempts},
		{"ConcurrentAddSigningKey", testConcurrentAddSigningKey},
		{"ConcurrentUpdateClient", testConcurrentUpdateClient},
		{"ConcurrentUseInitialAccessToken", testConcurrentUseInitialAccessToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

// t0 has nanoseconds and a zone other than UTC: stores keep microseconds and answer in UTC.
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.FixedZone("CET", 3600))

// norm is what a store gives back for t: UTC, truncated to the microsecond.
func norm(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// hash returns the SHA-256 of s, as the authority hashes its secrets.
func hash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

var (
	alice = IdentityIDs[0]
	bob   = IdentityIDs[1]
	carol = IdentityIDs[2]
)

func wantEqual[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantErr fails unless errors.Is(err, target).
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error = %v, want %v", what, err, target)
	}
}

func normKey(k authority.SigningKey) authority.SigningKey {
	k.CreateTime, k.SignTime, k.RetireTime, k.ExpireTime = norm(k.CreateTime), norm(k.SignTime), norm(k.RetireTime), norm(k.ExpireTime)
	return k
}

func newKey(id, alg string, create time.Time) authority.SigningKey {
	return authority.SigningKey{
		ID:         id,
		Alg:        alg,
		PrivateJWK: []byte(`{"kty":"EC","crv":"P-256","kid":"` + id + `","d":"secret"}`),
		CreateTime: create,
		SignTime:   create.Add(time.Hour),
	}
}

func wantKeys(t *testing.T, s authority.Store, now time.Time, want ...authority.SigningKey) {
	t.Helper()
	got, err := s.SigningKeys(t.Context(), now)
	must(t, err)
	var normed []authority.SigningKey
	for _, k := range want {
		normed = append(normed, normKey(k))
	}
	if len(got) == 0 && len(normed) == 0 {
		return
	}
	wantEqual(t, fmt.Sprintf("SigningKeys(%v)", now), got, normed)
}

// testSigningKeys: keys round-trip, come oldest first, and leave the list at their expire
// time.
func testSigningKeys(t *testing.T, s authority.Store) {
	ctx := t.Context()
	wantKeys(t, s, t0)

	// A key retired already (as another instance may have left it) stays until its expire
	// time: adding keys after it changes nothing of it.
	old := newKey("rs0", "RS256", t0.Add(-48*time.Hour))
	old.RetireTime = t0.Add(-24 * time.Hour)
	old.ExpireTime = t0.Add(time.Hour)
	must(t, s.AddSigningKey(ctx, old, time.Time{}, time.Hour))
	rs := newKey("rs1", "RS256", t0)
	must(t, s.AddSigningKey(ctx, rs, old.CreateTime, time.Hour))
	// Another algorithm's keys are none of its business.
	es := newKey("es1", "ES256", t0.Add(time.Minute))
	must(t, s.AddSigningKey(ctx, es, time.Time{}, time.Hour))
	wantKeys(t, s, t0, old, rs, es)

	// An ID taken: nothing is stored, nothing retired.
	dup := newKey("rs1", "RS256", t0.Add(2*time.Hour))
	wantErr(t, "AddSigningKey of a taken ID", s.AddSigningKey(ctx, dup, rs.CreateTime, time.Hour), authority.ErrConflict)
	wantKeys(t, s, t0, old, rs, es)

	// A key is listed until its expire time.
	wantKeys(t, s, norm(old.ExpireTime).Add(-time.Microsecond), old, rs, es)
	wantKeys(t, s, norm(old.ExpireTime), rs, es)
}

// testSigningKeyRotation: a new key retires the keys of its algorithm that were not retired
// yet, as of its sign time, and has them expire verifyFor later.
func testSigningKeyRotation(t *testing.T, s authority.Store) {
	ctx := t.Context()
	rs1 := newKey("rs1", "RS256", t0)
	es1 := newKey("es1", "ES256", t0.Add(time.Minute))
	must(t, s.AddSigningKey(ctx, rs1, time.Time{}, time.Hour))
	must(t, s.AddSigningKey(ctx, es1, time.Time{}, time.Hour))

	rs2 := newKey("rs2", "RS256", t0.Add(24*time.Hour))
	must(t, s.AddSigningKey(ctx, rs2, rs1.CreateTime, 2*time.Hour))
	rs1.RetireTime, rs1.ExpireTime = rs2.SignTime, rs2.SignTime.Add(2*time.Hour)
	wantKeys(t, s, t0, rs1, es1, rs2)

	rs3 := newKey("rs3", "RS256", t0.Add(48*time.Hour))
	must(t, s.AddSigningKey(ctx, rs3, rs2.CreateTime, 3*time.Hour))
	rs2.RetireTime, rs2.ExpireTime = rs3.SignTime, rs3.SignTime.Add(3*time.Hour)
	wantKeys(t, s, t0, rs1, es1, rs2, rs3)
	wantKeys(t, s, rs1.ExpireTime.Add(time.Second), es1, rs2, rs3)
}

// testSigningKeyConflict: an instance that rotates with a stale view of the keys (another
// made a key after the newest it knew) stores nothing.
func testSigningKeyConflict(t *testing.T, s authority.Store) {
	ctx := t.Context()
	rs1 := newKey("rs1", "RS256", t0)
	must(t, s.AddSigningKey(ctx, rs1, time.Time{}, time.Hour))
	rs2 := newKey("rs2", "RS256", t0.Add(24*time.Hour))
	must(t, s.AddSigningKey(ctx, rs2, rs1.CreateTime, time.Hour))
	rs1.RetireTime, rs1.ExpireTime = rs2.SignTime, rs2.SignTime.Add(time.Hour)

	late := newKey("rs2b", "RS256", t0.Add(24*time.Hour+time.Minute))
	wantErr(t, "AddSigningKey after another rotated", s.AddSigningKey(ctx, late, rs1.CreateTime, time.Hour), authority.ErrConflict)
	// No notAfter: there must be no key of the algorithm at all.
	wantErr(t, "AddSigningKey of a first key, twice", s.AddSigningKey(ctx, late, time.Time{}, time.Hour), authority.ErrConflict)
	wantKeys(t, s, t0, rs1, rs2)

	// The newest key's creation time is not after itself.
	must(t, s.AddSigningKey(ctx, late, rs2.CreateTime, time.Hour))
	rs2.RetireTime, rs2.ExpireTime = late.SignTime, late.SignTime.Add(time.Hour)
	wantKeys(t, s, t0, rs1, rs2, late)
}

// testReplaceSigningKeyPrivateJWK: a key's private JWK is replaced only while it is what the
// caller read; nothing else of the key changes.
func testReplaceSigningKeyPrivateJWK(t *testing.T, s authority.Store) {
	ctx := t.Context()
	rs1 := newKey("rs1", "RS256", t0)
	es1 := newKey("es1", "ES256", t0.Add(time.Minute))
	must(t, s.AddSigningKey(ctx, rs1, time.Time{}, time.Hour))
	must(t, s.AddSigningKey(ctx, es1, time.Time{}, time.Hour))

	sealed := []byte(`{"sealed":"A256GCM","kek":"k1","nonce":"AAAA","ciphertext":"BBBB"}`)
	must(t, s.ReplaceSigningKeyPrivateJWK(ctx, rs1.ID, rs1.PrivateJWK, sealed))
	stale := rs1.PrivateJWK
	rs1.PrivateJWK = sealed
	wantKeys(t, s, t0, rs1, es1)

	// Read before the replacement: refused, and the key keeps the newer JWK.
	wantErr(t, "ReplaceSigningKeyPrivateJWK of a changed key",
		s.ReplaceSigningKeyPrivateJWK(ctx, rs1.ID, stale, []byte(`{"kty":"other"}`)), authority.ErrConflict)
	wantErr(t, "ReplaceSigningKeyPrivateJWK of a missing key",
		s.ReplaceSigningKeyPrivateJWK(ctx, "nokey", stale, sealed), authority.ErrNotFound)
	wantKeys(t, s, t0, rs1, es1)
}

func newClient(id string) authority.Client {
	return authority.Client{
		ID:                    id,
		SecretHash:            hash("secret of " + id),
		RegistrationTokenHash: hash("registration token of " + id),
		Metadata: authority.ClientMetadata{
			RedirectURIs:              []string{"https://rp.example/cb", "https://rp.example/cb2"},
			ResponseTypes:             []string{"code"},
			GrantTypes:                []string{"authorization_code"},
			ApplicationType:           "web",
			ClientName:                "RP " + id,
			ClientURI:                 "https://rp.example/",
			LogoURI:                   "https://rp.example/logo.png",
			PolicyURI:                 "https://rp.example/policy",
			TOSURI:                    "https://rp.example/tos",
			Contacts:                  []string{"ops@rp.example"},
			TokenEndpointAuthMethod:   "client_secret_basic",
			IDTokenSignedResponseAlg:  "RS256",
			UserinfoSignedResponseAlg: "ES256",
			SubjectType:               "pairwise",
			Sector:                    "rp.example",
		},
		CreateTime: t0,
	}
}

func normClient(c authority.Client) authority.Client {
	c.CreateTime, c.SecretExpireTime = norm(c.CreateTime), norm(c.SecretExpireTime)
	return c
}

func wantClient(t *testing.T, s authority.Store, want authority.Client) {
	t.Helper()
	got, err := s.GetClient(t.Context(), want.ID)
	must(t, err)
	wantEqual(t, "GetClient", got, normClient(want))
}

func testClients(t *testing.T, s authority.Store) {
	ctx := t.Context()
	_, err := s.GetClient(ctx, "c1")
	wantErr(t, "GetClient of a missing client", err, authority.ErrNotFound)

	c1 := newClient("c1")
	must(t, s.CreateClient(ctx, c1))
	got, err := s.GetClient(ctx, "c1")
	must(t, err)
	wantEqual(t, "GetClient", got, normClient(c1))

	other := newClient("c1")
	other.Metadata.ClientName = "impostor"
	wantErr(t, "CreateClient of a taken ID", s.CreateClient(ctx, other), authority.ErrConflict)
	got, err = s.GetClient(ctx, "c1")
	must(t, err)
	wantEqual(t, "GetClient after a refused CreateClient", got, normClient(c1))

	// Only what must be set.
	bare := authority.Client{
		ID: "c2", SecretHash: hash("s2"), RegistrationTokenHash: hash("r2"),
		Metadata: authority.ClientMetadata{
			RedirectURIs: []string{"http://127.0.0.1/cb"}, ResponseTypes: []string{"code"}, GrantTypes: []string{"authorization_code"},
			ApplicationType: "native", TokenEndpointAuthMethod: "client_secret_post", IDTokenSignedResponseAlg: "ES256", SubjectType: "public",
		},
		CreateTime: t0.Add(time.Second),
	}
	must(t, s.CreateClient(ctx, bare))
	got, err = s.GetClient(ctx, "c2")
	must(t, err)
	wantEqual(t, "GetClient of a client with little metadata", got, normClient(bare))

	// A public client has no secret; a confidential one's may expire.
	public := newClient("c3")
	public.SecretHash = nil
	public.Metadata.TokenEndpointAuthMethod = "none"
	must(t, s.CreateClient(ctx, public))
	wantClient(t, s, public)
	expiring := newClient("c4")
	expiring.SecretExpireTime = t0.Add(time.Hour)
	must(t, s.CreateClient(ctx, expiring))
	wantClient(t, s, expiring)
}

// testUpdateClient: an update replaces the secret, its expiry, the registration token and
// the metadata, provided the registration token is still the one the caller read.
func testUpdateClient(t *testing.T, s authority.Store) {
	ctx := t.Context()
	c1 := newClient("c1")
	wantErr(t, "UpdateClient of a missing client", s.UpdateClient(ctx, c1, c1.RegistrationTokenHash), authority.ErrNotFound)
	must(t, s.CreateClient(ctx, c1))
	must(t, s.CreateClient(ctx, newClient("c2")))

	next := c1
	next.SecretHash, next.SecretExpireTime = hash("new secret of c1"), t0.Add(24*time.Hour)
	next.RegistrationTokenHash = hash("second registration token of c1")
	next.Metadata.RedirectURIs = []string{"https://other.example/cb"}
	next.Metadata.ClientName, next.Metadata.Contacts = "", nil
	next.Metadata.Sector = "other.example"
	must(t, s.UpdateClient(ctx, next, c1.RegistrationTokenHash))
	wantClient(t, s, next)
	wantClient(t, s, newClient("c2"))

	// The old registration token no longer updates.
	stale := next
	stale.Metadata.ClientName = "stale"
	wantErr(t, "UpdateClient with the replaced token", s.UpdateClient(ctx, stale, c1.RegistrationTokenHash), authority.ErrConflict)
	wantClient(t, s, next)

	// To a public client: no secret, no expiry.
	public := next
	public.SecretHash, public.SecretExpireTime = nil, time.Time{}
	public.Metadata.TokenEndpointAuthMethod = "none"
	public.RegistrationTokenHash = hash("third registration token of c1")
	must(t, s.UpdateClient(ctx, public, next.RegistrationTokenHash))
	wantClient(t, s, public)
}

// testDeleteClient: a deletion takes the client's grants, access tokens and consents with
// it, and nothing of other clients; a grant, consent or token for it is refused after.
func testDeleteClient(t *testing.T, s authority.Store) {
	ctx := t.Context()
	c1, c2 := newClient("c1"), newClient("c2")
	wantErr(t, "DeleteClient of a missing client", s.DeleteClient(ctx, "c1", c1.RegistrationTokenHash), authority.ErrNotFound)
	must(t, s.CreateClient(ctx, c1))
	must(t, s.CreateClient(ctx, c2))
	for _, c := range []string{"c1", "c2"} {
		must(t, s.PutConsent(ctx, authority.Consent{ClientID: c, IdentityID: alice, Scopes: []string{"openid"}, UpdateTime: t0}))
		g := newGrant("g-"+c, "code-"+c, c, alice)
		g.ExpireTime = t0.Add(time.Hour)
		must(t, s.CreateGrant(ctx, g))
		at := newAccessToken("token-"+c, "g-"+c, alice)
		at.ClientID = c
		must(t, s.CreateAccessToken(ctx, at))
	}
	// A token that outlived its grant (swept meanwhile) goes too.
	must(t, s.CreateGrant(ctx, newGrant("g-swept", "code-swept", "c1", bob)))
	must(t, s.CreateAccessToken(ctx, newAccessToken("token-orphan", "g-swept", bob)))
	if _, err := s.DeleteExpired(ctx, t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}

	wantErr(t, "DeleteClient with another token", s.DeleteClient(ctx, "c1", hash("not the token")), authority.ErrConflict)
	wantClient(t, s, c1)
	_, err := s.GetAccessToken(ctx, hash("token-c1"))
	must(t, err)

	must(t, s.DeleteClient(ctx, "c1", c1.RegistrationTokenHash))
	_, err = s.GetClient(ctx, "c1")
	wantErr(t, "GetClient of a deleted client", err, authority.ErrNotFound)
	_, err = s.GetConsent(ctx, "c1", alice)
	wantErr(t, "GetConsent of a deleted client", err, authority.ErrNotFound)
	for _, tok := range []string{"token-c1", "token-orphan"} {
		_, err = s.GetAccessToken(ctx, hash(tok))
		wantErr(t, "GetAccessToken of a deleted client's "+tok, err, authority.ErrNotFound)
	}
	_, err = s.RedeemGrant(ctx, hash("code-c1"), t0.Add(time.Second))
	wantErr(t, "RedeemGrant of a deleted client's code", err, authority.ErrNotFound)
	wantErr(t, "DeleteClient again", s.DeleteClient(ctx, "c1", c1.RegistrationTokenHash), authority.ErrNotFound)

	// Nothing for it can be stored any more.
	wantErr(t, "CreateGrant for a deleted client", s.CreateGrant(ctx, newGrant("g-late", "code-late", "c1", alice)), authority.ErrNotFound)
	wantErr(t, "PutConsent for a deleted client", s.PutConsent(ctx, authority.Consent{ClientID: "c1", IdentityID: bob, UpdateTime: t0}), authority.ErrNotFound)
	wantErr(t, "CreateAccessToken of a deleted grant", s.CreateAccessToken(ctx, newAccessToken("token-late", "g-c1", alice)), authority.ErrNotFound)

	// The other client keeps everything.
	wantClient(t, s, c2)
	if _, err := s.GetConsent(ctx, "c2", alice); err != nil {
		t.Fatalf("the other client's consent: %v", err)
	}
	other := newAccessToken("token-c2", "g-c2", alice)
	other.ClientID = "c2"
	wantAccessToken(t, s, other)
	if _, err := s.RedeemGrant(ctx, hash("code-c2"), t0.Add(time.Second)); err != nil {
		t.Fatalf("the other client's code: %v", err)
	}
}

func newInitialToken(id string, maxUses int) authority.InitialAccessToken {
	return authority.InitialAccessToken{
		ID: id, TokenHash: hash("initial token " + id), Description: "for " + id, MaxUses: maxUses,
		CreateTime: t0, ExpireTime: t0.Add(time.Hour),
	}
}

func normInitialToken(tok authority.InitialAccessToken) authority.InitialAccessToken {
	tok.CreateTime, tok.ExpireTime, tok.RevokeTime = norm(tok.CreateTime), norm(tok.ExpireTime), norm(tok.RevokeTime)
	return tok
}

func wantInitialToken(t *testing.T, s authority.Store, want authority.InitialAccessToken) {
	t.Helper()
	got, err := s.GetInitialAccessToken(t.Context(), want.TokenHash)
	must(t, err)
	wantEqual(t, "GetInitialAccessToken", got, normInitialToken(want))
}

// testInitialAccessTokens: tokens round-trip, list oldest first, and are revoked once.
func testInitialAccessTokens(t *testing.T, s authority.Store) {
	ctx := t.Context()
	list, err := s.ListInitialAccessTokens(ctx)
	if err != nil || len(list) != 0 {
		t.Fatalf("ListInitialAccessTokens of an empty store = %v, %v", list, err)
	}
	_, err = s.GetInitialAccessToken(ctx, hash("nothing"))
	wantErr(t, "GetInitialAccessToken of a missing token", err, authority.ErrNotFound)

	later := newInitialToken("t2", 0)
	later.CreateTime, later.ExpireTime = t0.Add(time.Minute), time.Time{}
	first := newInitialToken("t1", 5)
	must(t, s.CreateInitialAccessToken(ctx, later))
	must(t, s.CreateInitialAccessToken(ctx, first))
	wantInitialToken(t, s, first)
	wantInitialToken(t, s, later)
	taken := newInitialToken("t1", 1)
	taken.TokenHash = hash("another")
	wantErr(t, "CreateInitialAccessToken of a taken ID", s.CreateInitialAccessToken(ctx, taken), authority.ErrConflict)
	sameHash := newInitialToken("t3", 1)
	sameHash.TokenHash = first.TokenHash
	wantErr(t, "CreateInitialAccessToken of a taken hash", s.CreateInitialAccessToken(ctx, sameHash), authority.ErrConflict)

	list, err = s.ListInitialAccessTokens(ctx)
	must(t, err)
	wantEqual(t, "ListInitialAccessTokens", list, []authority.InitialAccessToken{normInitialToken(first), normInitialToken(later)})

	wantErr(t, "RevokeInitialAccessToken of a missing token", s.RevokeInitialAccessToken(ctx, "t9", t0), authority.ErrNotFound)
	must(t, s.RevokeInitialAccessToken(ctx, "t1", t0.Add(time.Second)))
	must(t, s.RevokeInitialAccessToken(ctx, "t1", t0.Add(time.Hour)))
	first.RevokeTime = t0.Add(time.Second)
	wantInitialToken(t, s, first)
	wantInitialToken(t, s, later)
}

// testUseInitialAccessToken: a use registers the client and is counted, in one
// transaction; a revoked, expired or used up token registers nothing.
func testUseInitialAccessToken(t *testing.T, s authority.Store) {
	ctx := t.Context()
	once := newInitialToken("once", 1)
	must(t, s.CreateInitialAccessToken(ctx, once))
	wantErr(t, "UseInitialAccessToken of a missing token", s.UseInitialAccessToken(ctx, hash("nothing"), t0, newClient("c0")), authority.ErrNotFound)

	// A taken client ID refuses the registration, and the use is not counted.
	must(t, s.CreateClient(ctx, newClient("c1")))
	wantErr(t, "UseInitialAccessToken for a taken client ID", s.UseInitialAccessToken(ctx, once.TokenHash, t0, newClient("c1")), authority.ErrConflict)
	wantInitialToken(t, s, once)

	must(t, s.UseInitialAccessToken(ctx, once.TokenHash, t0.Add(time.Second), newClient("c2")))
	wantClient(t, s, newClient("c2"))
	once.Uses = 1
	wantInitialToken(t, s, once)
	wantErr(t, "UseInitialAccessToken of a used up token", s.UseInitialAccessToken(ctx, once.TokenHash, t0.Add(time.Second), newClient("c3")), authority.ErrConflict)

	expiring := newInitialToken("expiring", 0)
	revoked := newInitialToken("revoked", 0)
	for _, tok := range []authority.InitialAccessToken{expiring, revoked} {
		must(t, s.CreateInitialAccessToken(ctx, tok))
	}
	must(t, s.RevokeInitialAccessToken(ctx, "revoked", t0))
	wantErr(t, "UseInitialAccessToken at the expiry", s.UseInitialAccessToken(ctx, expiring.TokenHash, expiring.ExpireTime, newClient("c3")), authority.ErrConflict)
	wantErr(t, "UseInitialAccessToken of a revoked token", s.UseInitialAccessToken(ctx, revoked.TokenHash, t0, newClient("c3")), authority.ErrConflict)
	_, err := s.GetClient(ctx, "c3")
	wantErr(t, "GetClient of a refused registration", err, authority.ErrNotFound)

	// Any number of uses for a token without a maximum, until it expires.
	for i := range 3 {
		must(t, s.UseInitialAccessToken(ctx, expiring.TokenHash, expiring.ExpireTime.Add(-time.Microsecond), newClient(fmt.Sprintf("many-%d", i))))
	}
	expiring.Uses = 3
	wantInitialToken(t, s, expiring)
}

// setCredentials gives identity credentials through a credential link used at at.
func setCredentials(t *testing.T, s authority.Store, c authority.HolderCredential, at time.Time) {
	t.Helper()
	l := newLink("setup of "+c.IdentityID+at.String(), c.IdentityID, at)
	must(t, s.CreateCredentialLink(t.Context(), l, nil))
	must(t, s.RedeemCredentialLink(t.Context(), l.TokenHash, at, c, nil))
}

func newCredential(identityID string) authority.HolderCredential {
	return authority.HolderCredential{
		IdentityID:   identityID,
		PasswordHash: "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA of " + identityID,
		TOTPSecret:   "JBSWY3DPEHPK3PXP",
		TOTPLastStep: 100,
		UpdateTime:   t0,
	}
}

func normCredential(c authority.HolderCredential) authority.HolderCredential {
	c.UpdateTime = norm(c.UpdateTime)
	return c
}

func wantCredential(t *testing.T, s authority.Store, want authority.HolderCredential) {
	t.Helper()
	got, err := s.GetHolderCredential(t.Context(), want.IdentityID)
	must(t, err)
	wantEqual(t, "GetHolderCredential", got, normCredential(want))
}

func newLink(token, identityID string, create time.Time) authority.CredentialLink {
	return authority.CredentialLink{
		TokenHash:  hash(token),
		IdentityID: identityID,
		Identifier: "alice.example",
		Purpose:    "setup",
		AgentID:    "agent1",
		CreateTime: create,
		ExpireTime: create.Add(time.Hour),
	}
}

func normLink(l authority.CredentialLink) authority.CredentialLink {
	l.CreateTime, l.ExpireTime, l.UseTime, l.VoidTime = norm(l.CreateTime), norm(l.ExpireTime), norm(l.UseTime), norm(l.VoidTime)
	return l
}

func wantLink(t *testing.T, s authority.Store, want authority.CredentialLink) {
	t.Helper()
	got, err := s.GetCredentialLink(t.Context(), want.TokenHash)
	must(t, err)
	wantEqual(t, "GetCredentialLink", got, normLink(want))
}

// testCredentialLinks: a link round-trips, keeps a pending choice while unused, and is good
// once, before it expires.
func testCredentialLinks(t *testing.T, s authority.Store) {
	ctx := t.Context()
	_, err := s.GetCredentialLink(ctx, hash("nothing"))
	wantErr(t, "GetCredentialLink of a missing link", err, authority.ErrNotFound)

	l := newLink("link1", alice, t0)
	must(t, s.CreateCredentialLink(ctx, l, nil))
	wantLink(t, s, l)
	dup := newLink("link1", bob, t0)
	wantErr(t, "CreateCredentialLink of a taken token", s.CreateCredentialLink(ctx, dup, nil), authority.ErrConflict)
	wantLink(t, s, l)

	must(t, s.SetCredentialLinkPending(ctx, l.TokenHash, "$argon2id$pending", "PENDINGSECRET"))
	l.PendingPasswordHash, l.PendingTOTPSecret = "$argon2id$pending", "PENDINGSECRET"
	wantLink(t, s, l)
	wantErr(t, "SetCredentialLinkPending of a missing link", s.SetCredentialLinkPending(ctx, hash("nothing"), "x", ""), authority.ErrNotFound)

	_, err = s.GetHolderCredential(ctx, alice)
	wantErr(t, "GetHolderCredential before any was set", err, authority.ErrNotFound)

	c := newCredential(alice)
	used := t0.Add(10 * time.Minute)
	must(t, s.RedeemCredentialLink(ctx, l.TokenHash, used, c, nil))
	l.UseTime = used
	wantLink(t, s, l)
	wantCredential(t, s, c)

	other := newCredential(alice)
	other.PasswordHash = "$argon2id$other"
	wantErr(t, "RedeemCredentialLink of a used link", s.RedeemCredentialLink(ctx, l.TokenHash, used.Add(time.Minute), other, nil), authority.ErrConflict)
	wantErr(t, "SetCredentialLinkPending of a used link", s.SetCredentialLinkPending(ctx, l.TokenHash, "x", ""), authority.ErrConflict)
	wantLink(t, s, l)
	wantCredential(t, s, c)
	wantErr(t, "RedeemCredentialLink of a missing link", s.RedeemCredentialLink(ctx, hash("nothing"), used, other, nil), authority.ErrNotFound)

	// A link has expired at its expire time: it is refused, and stays unused.
	exp := newLink("link2", alice, t0)
	must(t, s.CreateCredentialLink(ctx, exp, nil))
	for _, at := range []time.Time{norm(exp.ExpireTime), exp.ExpireTime.Add(time.Hour)} {
		wantErr(t, "RedeemCredentialLink of an expired link", s.RedeemCredentialLink(ctx, exp.TokenHash, at, other, nil), authority.ErrConflict)
	}
	wantLink(t, s, exp)
	wantCredential(t, s, c)
	// Until then it is good.
	must(t, s.RedeemCredentialLink(ctx, exp.TokenHash, norm(exp.ExpireTime).Add(-time.Microsecond), other, nil))
	wantCredential(t, s, other)
}

// testRedeemCredentialLink: new credentials replace the old ones entirely.
func testRedeemCredentialLink(t *testing.T, s authority.Store) {
	ctx := t.Context()
	setCredentials(t, s, newCredential(alice), t0)
	setCredentials(t, s, newCredential(bob), t0)
	now := t0.Add(time.Hour)
	reset := authority.HolderCredential{
		IdentityID:   alice,
		PasswordHash: "$argon2id$new",
		// No second factor any more.
		UpdateTime: now.Add(time.Minute),
	}
	l := newLink("reset", alice, now)
	l.Purpose = "reset"
	must(t, s.CreateCredentialLink(ctx, l, nil))
	must(t, s.RedeemCredentialLink(ctx, l.TokenHash, now.Add(time.Minute), reset, nil))
	wantCredential(t, s, reset)
	// Another identity's are left alone.
	wantCredential(t, s, newCredential(bob))
}

// throttle is a budget of two free attempts, then waits of a minute, two, and at most
// four; forgotten after an hour.
func throttle(name string) authority.ThrottleKey {
	return authority.ThrottleKey{Hash: hash("throttle " + name), Backoff: authority.Backoff{Free: 2, Base: time.Minute, Max: 4 * time.Minute, Forget: time.Hour}}
}

// claim claims an attempt against keys at and fails unless the answer is want (zero: the
// attempt may go on).
func claim(t *testing.T, s authority.Store, at, want time.Time, keys ...authority.ThrottleKey) {
	t.Helper()
	got, err := s.ClaimLoginAttempt(t.Context(), keys, at)
	must(t, err)
	if !got.Equal(norm(want)) {
		t.Fatalf("ClaimLoginAttempt at %v = %v, want %v", at.Sub(t0), got.Sub(t0), norm(want).Sub(t0))
	}
}

// testLoginThrottles: a budget lets its free attempts through, then makes each attempt wait
// longer, up to its cap; a refused attempt changes nothing; a budget is forgotten after a
// quiet while and cleared by a success; several budgets are claimed together or not at all.
func testLoginThrottles(t *testing.T, s authority.Store) {
	ctx := t.Context()
	a, b := throttle("a"), throttle("b")
	var zero time.Time
	claim(t, s, t0, zero, a)
	claim(t, s, t0, zero, a) // the second free attempt: the next one waits a minute
	claim(t, s, t0, t0.Add(time.Minute), a)
	claim(t, s, t0.Add(59*time.Second), t0.Add(time.Minute), a)
	claim(t, s, t0.Add(time.Minute), zero, a) // 3rd: then two minutes
	claim(t, s, t0.Add(2*time.Minute), t0.Add(3*time.Minute), a)
	claim(t, s, t0.Add(3*time.Minute), zero, a) // 4th: then four
	claim(t, s, t0.Add(7*time.Minute), zero, a) // 5th: at most four
	claim(t, s, t0.Add(10*time.Minute), t0.Add(11*time.Minute), a)

	// With a budget that says wait, nothing of the others is claimed.
	claim(t, s, t0.Add(10*time.Minute), t0.Add(11*time.Minute), b, a)
	claim(t, s, t0.Add(10*time.Minute), zero, b)
	claim(t, s, t0.Add(10*time.Minute), zero, b) // b's second: b had not counted before
	claim(t, s, t0.Add(10*time.Minute), t0.Add(11*time.Minute), b)

	// A success clears an own budget; the others stay.
	ownA := a
	ownA.Own = true
	must(t, s.ReleaseLoginAttempts(ctx, []authority.ThrottleKey{ownA}, t0.Add(10*time.Minute)))
	claim(t, s, t0.Add(10*time.Minute), zero, a)
	claim(t, s, t0.Add(10*time.Minute), t0.Add(11*time.Minute), b)
	must(t, s.ReleaseLoginAttempts(ctx, nil, t0.Add(10*time.Minute)))

	// An hour after its last attempt a budget starts afresh.
	last := t0.Add(11 * time.Minute)
	claim(t, s, last, zero, b)
	claim(t, s, last.Add(time.Hour), zero, b)
	claim(t, s, last.Add(time.Hour), zero, b)
	claim(t, s, last.Add(time.Hour), last.Add(time.Hour+time.Minute), b)
}

// testSharedLoginThrottles: a Shared budget holds back only an attempt whose Own budget has
// used up its free attempts, and counts every attempt; a budget neither own nor shared holds
// back every attempt.
func testSharedLoginThrottles(t *testing.T, s authority.Store) {
	own := func(name string) authority.ThrottleKey {
		k := throttle(name)
		k.Own = true
		return k
	}
	shared := throttle("shared")
	shared.Shared = true
	var zero time.Time
	// Two sources use up the shared budget's two free attempts, and one of them its own.
	claim(t, s, t0, zero, own("guesser"), shared)
	claim(t, s, t0, zero, own("guesser"), shared)
	// The guesser is past its free attempts: the shared budget holds it back too, once its
	// own wait has passed.
	claim(t, s, t0, t0.Add(time.Minute), own("guesser"), shared)
	claim(t, s, t0.Add(time.Minute), zero, own("guesser"), shared) // shared: 3rd, then two minutes
	claim(t, s, t0.Add(2*time.Minute), t0.Add(3*time.Minute), own("guesser"), shared)
	// A source within its free attempts is not held back by the shared budget, and counts.
	claim(t, s, t0.Add(2*time.Minute), zero, own("holder"), shared) // shared: 4th, then four
	claim(t, s, t0.Add(2*time.Minute), zero, own("holder"), shared)
	// Past its own free attempts, it waits for its own budget and for the shared one, which
	// the holder's attempts pushed to four minutes.
	claim(t, s, t0.Add(2*time.Minute), t0.Add(6*time.Minute), own("holder"), shared)
	claim(t, s, t0.Add(6*time.Minute), zero, own("holder"), shared)
	// A budget neither own nor shared holds back a source within its free attempts.
	strict := throttle("codes")
	claim(t, s, t0, zero, own("a"), strict)
	claim(t, s, t0, zero, own("b"), strict)
	claim(t, s, t0, t0.Add(time.Minute), own("c"), strict)
}

// testReleaseLoginAttempts: a success forgets the own budgets it was counted against and
// gives back one attempt to each other budget, never below none, with the wait that the
// attempts left call for from the time of the success at most.
func testReleaseLoginAttempts(t *testing.T, s authority.Store) {
	ctx := t.Context()
	src := throttle("source")
	src.Own = true
	shared := throttle("shared")
	shared.Shared = true
	// other is a source past its free attempts, its wait over at t0.
	other := throttle("other")
	other.Own = true
	var zero time.Time
	claim(t, s, t0.Add(-2*time.Minute), zero, other)
	claim(t, s, t0.Add(-2*time.Minute), zero, other)

	claim(t, s, t0, zero, src, shared)
	claim(t, s, t0, zero, src, shared) // the shared budget's second: the next waits a minute
	claim(t, s, t0, t0.Add(time.Minute), other, shared)
	// The second attempt succeeds: the source starts afresh, and the shared budget has one
	// of its two free attempts back, at once.
	must(t, s.ReleaseLoginAttempts(ctx, []authority.ThrottleKey{src, shared}, t0))
	claim(t, s, t0, zero, other, shared) // the shared budget's second again
	claim(t, s, t0.Add(time.Minute), t0.Add(2*time.Minute), other, shared)

	// Given back while past its free attempts, the shared budget waits no longer than the
	// attempts left call for from the time of the success.
	at := t0.Add(time.Minute)
	claim(t, s, at, zero, src, shared) // shared: 3rd, then two minutes
	must(t, s.ReleaseLoginAttempts(ctx, []authority.ThrottleKey{shared}, at.Add(30*time.Second)))
	claim(t, s, at.Add(90*time.Second), zero, other, shared) // not at.Add(2 * time.Minute)

	// Given back more often than it counted: none counted, not fewer.
	later := t0.Add(time.Hour)
	for range 6 {
		must(t, s.ReleaseLoginAttempts(ctx, []authority.ThrottleKey{shared}, later))
	}
	claim(t, s, later, zero, shared)
	claim(t, s, later, zero, shared)
	claim(t, s, later, later.Add(time.Minute), shared)
	// Releasing budgets that were never claimed changes nothing.
	must(t, s.ReleaseLoginAttempts(ctx, []authority.ThrottleKey{throttle("never"), src}, later))
	claim(t, s, later, zero, throttle("never"))
}

// testKnownDevices: a device is known for the identity it logged in as, until it expires;
// recording it again extends it.
func testKnownDevices(t *testing.T, s authority.Store) {
	ctx := t.Context()
	setCredentials(t, s, newCredential(alice), t0)
	known := func(device, identity string, at time.Time, want bool) {
		t.Helper()
		got, err := s.IsKnownDevice(ctx, hash(device), identity, at)
		must(t, err)
		if got != want {
			t.Fatalf("IsKnownDevice(%s, %s) at %v = %v, want %v", device, identity, at.Sub(t0), got, want)
		}
	}
	known("d1", alice, t0, false)
	must(t, s.PutKnownDevice(ctx, authority.KnownDevice{DeviceHash: hash("d1"), IdentityID: alice, CreateTime: t0, ExpireTime: t0.Add(time.Hour)}))
	known("d1", alice, t0, true)
	known("d1", bob, t0, false)
	known("d2", alice, t0, false)
	known("d1", alice, t0.Add(time.Hour), false)
	must(t, s.PutKnownDevice(ctx, authority.KnownDevice{DeviceHash: hash("d1"), IdentityID: alice, CreateTime: t0.Add(time.Hour), ExpireTime: t0.Add(2 * time.Hour)}))
	known("d1", alice, t0.Add(time.Hour), true)
	err := s.PutKnownDevice(ctx, authority.KnownDevice{DeviceHash: hash("d1"), IdentityID: "id_nobody", CreateTime: t0, ExpireTime: t0.Add(time.Hour)})
	wantErr(t, "PutKnownDevice of an unknown identity", err, authority.ErrNotFound)
}

// testRedeemForgetsKnownDevices: new credentials forget the identity's known devices (a
// browser that logged in with the old ones is a stranger's again), not another identity's.
func testRedeemForgetsKnownDevices(t *testing.T, s authority.Store) {
	ctx := t.Context()
	setCredentials(t, s, newCredential(alice), t0)
	setCredentials(t, s, newCredential(bob), t0)
	for _, d := range []authority.KnownDevice{
		{DeviceHash: hash("laptop"), IdentityID: alice, CreateTime: t0, ExpireTime: t0.Add(48 * time.Hour)},
		{DeviceHash: hash("attacker"), IdentityID: alice, CreateTime: t0, ExpireTime: t0.Add(48 * time.Hour)},
		{DeviceHash: hash("laptop"), IdentityID: bob, CreateTime: t0, ExpireTime: t0.Add(48 * time.Hour)},
	} {
		must(t, s.PutKnownDevice(ctx, d))
	}
	now := t0.Add(time.Hour)
	l := newLink("reset", alice, now)
	must(t, s.CreateCredentialLink(ctx, l, nil))
	must(t, s.RedeemCredentialLink(ctx, l.TokenHash, now, newCredential(alice), nil))
	for _, tc := range []struct {
		device, identity string
		want             bool
	}{{"laptop", alice, false}, {"attacker", alice, false}, {"laptop", bob, true}} {
		got, err := s.IsKnownDevice(ctx, hash(tc.device), tc.identity, now)
		must(t, err)
		if got != tc.want {
			t.Fatalf("after new credentials of %s: IsKnownDevice(%s, %s) = %v, want %v", alice, tc.device, tc.identity, got, tc.want)
		}
	}
}

// testTOTPSteps: each time step's code is good once, and no earlier one after it.
func testTOTPSteps(t *testing.T, s authority.Store) {
	ctx := t.Context()
	wantErr(t, "UseTOTPStep without credentials", s.UseTOTPStep(ctx, alice, 1), authority.ErrNotFound)
	c := newCredential(alice) // TOTPLastStep 100: the code that confirmed the secret
	setCredentials(t, s, c, t0)
	setCredentials(t, s, newCredential(bob), t0)

	wantErr(t, "UseTOTPStep of the confirming step", s.UseTOTPStep(ctx, alice, 100), authority.ErrConflict)
	must(t, s.UseTOTPStep(ctx, alice, 101))
	wantErr(t, "UseTOTPStep of the same step again", s.UseTOTPStep(ctx, alice, 101), authority.ErrConflict)
	wantErr(t, "UseTOTPStep of an earlier step", s.UseTOTPStep(ctx, alice, 99), authority.ErrConflict)
	must(t, s.UseTOTPStep(ctx, alice, 105))
	wantErr(t, "UseTOTPStep of a step skipped", s.UseTOTPStep(ctx, alice, 103), authority.ErrConflict)
	c.TOTPLastStep = 105
	wantCredential(t, s, c)
	// Each identity counts its own.
	must(t, s.UseTOTPStep(ctx, bob, 101))
}

func newAuthRequest(id string) authority.AuthRequest {
	maxAge := int64(3600)
	return authority.AuthRequest{
		ID:          id,
		BrowserHash: hash("browser of " + id),
		Params: authority.AuthParams{
			ClientID:      "c1",
			RedirectURI:   "https://rp.example/cb",
			Scopes:        []string{"openid", "email"},
			State:         "state-" + id,
			Nonce:         "nonce-" + id,
			CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
			Claims: authority.ClaimsRequest{
				Userinfo: map[string]*authority.ClaimRequest{
					"email": {Essential: true, Reason: "to send you the receipt"},
					"name":  nil,
				},
				IDToken: map[string]*authority.ClaimRequest{
					"id4me.identifier": {Value: "alice.example"},
					"acr":              {Values: []any{"loa2", "loa3"}, Essential: true},
				},
			},
			LoginHint: "alice.example",
			Prompt:    []string{"login", "consent"},
			MaxAge:    &maxAge,
		},
		CreateTime: t0,
		ExpireTime: t0.Add(10 * time.Minute),
	}
}

func normAuthRequest(r authority.AuthRequest) authority.AuthRequest {
	r.CreateTime, r.ExpireTime = norm(r.CreateTime), norm(r.ExpireTime)
	return r
}

func wantAuthRequest(t *testing.T, s authority.Store, want authority.AuthRequest) {
	t.Helper()
	got, err := s.GetAuthRequest(t.Context(), want.ID)
	must(t, err)
	wantEqual(t, "GetAuthRequest", got, normAuthRequest(want))
}

func testAuthRequests(t *testing.T, s authority.Store) {
	ctx := t.Context()
	_, err := s.GetAuthRequest(ctx, "ar1")
	wantErr(t, "GetAuthRequest of a missing request", err, authority.ErrNotFound)

	r := newAuthRequest("ar1")
	must(t, s.CreateAuthRequest(ctx, r))
	wantAuthRequest(t, s, r)
	wantErr(t, "CreateAuthRequest of a taken ID", s.CreateAuthRequest(ctx, newAuthRequest("ar1")), authority.ErrConflict)
	bare := authority.AuthRequest{
		ID: "ar2", BrowserHash: hash("b2"),
		Params:     authority.AuthParams{ClientID: "c1", RedirectURI: "https://rp.example/cb", Scopes: []string{"openid"}},
		CreateTime: t0, ExpireTime: t0.Add(time.Minute),
	}
	must(t, s.CreateAuthRequest(ctx, bare))
	wantAuthRequest(t, s, bare)

	// Only the login progress changes.
	upd := r
	upd.PendingIdentityID, upd.PendingIdentifier, upd.PendingAMR = alice, "alice.example", []string{"pwd"}
	upd.LoginSessionHash = hash("session")
	upd.BrowserHash = hash("another browser")
	upd.Params.State = "changed"
	upd.ExpireTime = t0.Add(time.Hour)
	must(t, s.UpdateAuthRequest(ctx, upd))
	r.PendingIdentityID, r.PendingIdentifier, r.PendingAMR = alice, "alice.example", []string{"pwd"}
	r.LoginSessionHash = hash("session")
	wantAuthRequest(t, s, r)
	// And may be cleared.
	upd.PendingIdentityID, upd.PendingIdentifier, upd.PendingAMR, upd.LoginSessionHash = "", "", nil, nil
	must(t, s.UpdateAuthRequest(ctx, upd))
	r.PendingIdentityID, r.PendingIdentifier, r.PendingAMR, r.LoginSessionHash = "", "", nil, nil
	wantAuthRequest(t, s, r)
	missing := newAuthRequest("ar9")
	wantErr(t, "UpdateAuthRequest of a missing request", s.UpdateAuthRequest(ctx, missing), authority.ErrNotFound)

	must(t, s.DeleteAuthRequest(ctx, "ar1"))
	_, err = s.GetAuthRequest(ctx, "ar1")
	wantErr(t, "GetAuthRequest after DeleteAuthRequest", err, authority.ErrNotFound)
	must(t, s.DeleteAuthRequest(ctx, "ar1"))
	wantAuthRequest(t, s, bare)
}

func newSession(cookie, identityID string) authority.Session {
	return authority.Session{
		IDHash:     hash(cookie),
		IdentityID: identityID,
		Identifier: "alice.example",
		AuthTime:   t0,
		AMR:        []string{"pwd", "otp"},
		CreateTime: t0.Add(time.Second),
		ExpireTime: t0.Add(24 * time.Hour),
	}
}

func normSession(s authority.Session) authority.Session {
	s.AuthTime, s.CreateTime, s.ExpireTime = norm(s.AuthTime), norm(s.CreateTime), norm(s.ExpireTime)
	return s
}

func testSessions(t *testing.T, s authority.Store) {
	ctx := t.Context()
	_, err := s.GetSession(ctx, hash("cookie1"))
	wantErr(t, "GetSession of a missing session", err, authority.ErrNotFound)

	s1 := newSession("cookie1", alice)
	must(t, s.CreateSession(ctx, s1))
	s2 := newSession("cookie2", bob)
	s2.AMR = nil
	must(t, s.CreateSession(ctx, s2))
	wantErr(t, "CreateSession of a taken ID", s.CreateSession(ctx, newSession("cookie1", bob)), authority.ErrConflict)
	for _, want := range []authority.Session{s1, s2} {
		got, err := s.GetSession(ctx, want.IDHash)
		must(t, err)
		wantEqual(t, "GetSession", got, normSession(want))
	}

	must(t, s.DeleteSession(ctx, s1.IDHash))
	_, err = s.GetSession(ctx, s1.IDHash)
	wantErr(t, "GetSession after DeleteSession", err, authority.ErrNotFound)
	must(t, s.DeleteSession(ctx, s1.IDHash))
	if _, err := s.GetSession(ctx, s2.IDHash); err != nil {
		t.Fatalf("GetSession of another session after DeleteSession: %v", err)
	}
}

func testConsents(t *testing.T, s authority.Store) {
	ctx := t.Context()
	must(t, s.CreateClient(ctx, newClient("c1")))
	must(t, s.CreateClient(ctx, newClient("c2")))
	_, err := s.GetConsent(ctx, "c1", alice)
	wantErr(t, "GetConsent of a missing consent", err, authority.ErrNotFound)

	c := authority.Consent{ClientID: "c1", IdentityID: alice, Scopes: []string{"openid", "email"}, Claims: []string{"email", "name"}, UpdateTime: t0}
	must(t, s.PutConsent(ctx, c))
	other := authority.Consent{ClientID: "c2", IdentityID: alice, Scopes: []string{"openid"}, UpdateTime: t0}
	must(t, s.PutConsent(ctx, other))
	third := authority.Consent{ClientID: "c1", IdentityID: bob, Scopes: []string{"openid", "profile"}, Claims: []string{"name"}, UpdateTime: t0}
	must(t, s.PutConsent(ctx, third))

	c.Scopes, c.Claims, c.UpdateTime = []string{"openid"}, []string{"name"}, t0.Add(time.Hour)
	must(t, s.PutConsent(ctx, c))
	for _, want := range []authority.Consent{c, other, third} {
		got, err := s.GetConsent(ctx, want.ClientID, want.IdentityID)
		must(t, err)
		want.UpdateTime = norm(want.UpdateTime)
		wantEqual(t, "GetConsent", got, want)
	}
	_, err = s.GetConsent(ctx, "c2", bob)
	wantErr(t, "GetConsent of another pair", err, authority.ErrNotFound)
}

func newGrant(id, code, clientID, identityID string) authority.Grant {
	return authority.Grant{
		ID:            id,
		CodeHash:      hash(code),
		ClientID:      clientID,
		RedirectURI:   "https://rp.example/cb",
		IdentityID:    identityID,
		Identifier:    "alice.example",
		Subject:       "sub-of-" + identityID,
		Scopes:        []string{"openid", "email"},
		Claims:        []string{"email"},
		IDTokenClaims: []string{"id4me.identifier"},
		Nonce:         "n-0S6_WzA2Mj",
		CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		AuthTime:      t0,
		AMR:           []string{"pwd"},
		SessionID:     "sid-of-" + code,
		CreateTime:    t0.Add(time.Second),
		ExpireTime:    t0.Add(time.Minute),
	}
}

func normGrant(g authority.Grant) authority.Grant {
	g.AuthTime, g.CreateTime, g.ExpireTime = norm(g.AuthTime), norm(g.CreateTime), norm(g.ExpireTime)
	g.UseTime, g.RevokeTime = norm(g.UseTime), norm(g.RevokeTime)
	return g
}

// testGrants: a code is good once; using it again gives the grant back with ErrConflict.
func testGrants(t *testing.T, s authority.Store) {
	ctx := t.Context()
	must(t, s.CreateClient(ctx, newClient("c1")))
	_, err := s.RedeemGrant(ctx, hash("code1"), t0)
	wantErr(t, "RedeemGrant of a missing code", err, authority.ErrNotFound)
	_, err = s.GetGrant(ctx, hash("code1"))
	wantErr(t, "GetGrant of a missing code", err, authority.ErrNotFound)

	g := newGrant("g1", "code1", "c1", alice)
	must(t, s.CreateGrant(ctx, g))
	got, err := s.GetGrant(ctx, g.CodeHash)
	must(t, err)
	wantEqual(t, "GetGrant", got, normGrant(g))
	wantErr(t, "CreateGrant of a taken ID", s.CreateGrant(ctx, newGrant("g1", "code2", "c1", alice)), authority.ErrConflict)
	wantErr(t, "CreateGrant of a taken code", s.CreateGrant(ctx, newGrant("g2", "code1", "c1", alice)), authority.ErrConflict)
	bare := newGrant("g3", "code3", "c1", bob)
	bare.Claims, bare.IDTokenClaims, bare.AMR, bare.Nonce, bare.CodeChallenge = nil, nil, nil, "", ""
	must(t, s.CreateGrant(ctx, bare))

	used := t0.Add(10 * time.Second)
	got, err = s.RedeemGrant(ctx, g.CodeHash, used)
	must(t, err)
	g.UseTime = used
	wantEqual(t, "RedeemGrant", got, normGrant(g))
	got, err = s.GetGrant(ctx, g.CodeHash)
	must(t, err)
	wantEqual(t, "GetGrant of a used code", got, normGrant(g))

	got, err = s.RedeemGrant(ctx, g.CodeHash, used.Add(time.Second))
	wantErr(t, "RedeemGrant of a used code", err, authority.ErrConflict)
	wantEqual(t, "RedeemGrant of a used code", got, normGrant(g))

	got, err = s.RedeemGrant(ctx, bare.CodeHash, used)
	must(t, err)
	bare.UseTime = used
	wantEqual(t, "RedeemGrant of a grant with little in it", got, normGrant(bare))
}

func newAccessToken(token, grantID, identityID string) authority.AccessToken {
	return authority.AccessToken{
		TokenHash:  hash(token),
		GrantID:    grantID,
		ClientID:   "c1",
		IdentityID: identityID,
		Identifier: "alice.example",
		Subject:    "sub-of-" + identityID,
		Scopes:     []string{"openid", "email"},
		Claims:     []string{"email", "name"},
		CreateTime: t0.Add(time.Second),
		ExpireTime: t0.Add(time.Hour),
	}
}

func normAccessToken(at authority.AccessToken) authority.AccessToken {
	at.CreateTime, at.ExpireTime, at.RevokeTime = norm(at.CreateTime), norm(at.ExpireTime), norm(at.RevokeTime)
	return at
}

func wantAccessToken(t *testing.T, s authority.Store, want authority.AccessToken) {
	t.Helper()
	got, err := s.GetAccessToken(t.Context(), want.TokenHash)
	must(t, err)
	wantEqual(t, "GetAccessToken", got, normAccessToken(want))
}

func testAccessTokens(t *testing.T, s authority.Store) {
	ctx := t.Context()
	_, err := s.GetAccessToken(ctx, hash("token1"))
	wantErr(t, "GetAccessToken of a missing token", err, authority.ErrNotFound)
	wantErr(t, "CreateAccessToken of a missing grant", s.CreateAccessToken(ctx, newAccessToken("token1", "g1", alice)), authority.ErrNotFound)
	must(t, s.CreateClient(ctx, newClient("c1")))
	must(t, s.CreateGrant(ctx, newGrant("g1", "code1", "c1", alice)))
	must(t, s.CreateGrant(ctx, newGrant("g2", "code2", "c1", bob)))
	_, err = s.GetAccessToken(ctx, hash("token1"))
	wantErr(t, "GetAccessToken after a refused CreateAccessToken", err, authority.ErrNotFound)

	at := newAccessToken("token1", "g1", alice)
	must(t, s.CreateAccessToken(ctx, at))
	wantAccessToken(t, s, at)
	wantErr(t, "CreateAccessToken of a taken token", s.CreateAccessToken(ctx, newAccessToken("token1", "g2", bob)), authority.ErrConflict)
	wantAccessToken(t, s, at)

	revoked := newAccessToken("token2", "g2", bob)
	revoked.Scopes, revoked.Claims = []string{"openid"}, nil
	revoked.RevokeTime = t0.Add(time.Minute)
	must(t, s.CreateAccessToken(ctx, revoked))
	wantAccessToken(t, s, revoked)
}

// testRevokeGrant: revoking a grant revokes the tokens issued from it, and those issued
// from it later.
func testRevokeGrant(t *testing.T, s authority.Store) {
	ctx := t.Context()
	must(t, s.CreateClient(ctx, newClient("c1")))
	wantErr(t, "RevokeGrant of a missing grant", s.RevokeGrant(ctx, "g1", t0), authority.ErrNotFound)

	g1 := newGrant("g1", "code1", "c1", alice)
	g2 := newGrant("g2", "code2", "c1", bob)
	must(t, s.CreateGrant(ctx, g1))
	must(t, s.CreateGrant(ctx, g2))
	t1 := newAccessToken("t1", "g1", alice)
	t2 := newAccessToken("t2", "g1", alice)
	t2.RevokeTime = t0.Add(time.Minute) // revoked on its own before
	t3 := newAccessToken("t3", "g2", bob)
	for _, at := range []authority.AccessToken{t1, t2, t3} {
		must(t, s.CreateAccessToken(ctx, at))
	}

	revoked := t0.Add(time.Hour)
	must(t, s.RevokeGrant(ctx, "g1", revoked))
	t1.RevokeTime = revoked
	wantAccessToken(t, s, t1)
	wantAccessToken(t, s, t2)
	wantAccessToken(t, s, t3)
	got, err := s.RedeemGrant(ctx, g1.CodeHash, revoked.Add(time.Second))
	must(t, err)
	g1.UseTime, g1.RevokeTime = revoked.Add(time.Second), revoked
	wantEqual(t, "RedeemGrant of a revoked grant", got, normGrant(g1))
	got, err = s.RedeemGrant(ctx, g2.CodeHash, revoked)
	must(t, err)
	if !got.RevokeTime.IsZero() {
		t.Fatalf("another grant was revoked: %+v", got)
	}

	// A token issued from a revoked grant is stored revoked; revoking again is harmless and
	// keeps the first revoke time.
	t4 := newAccessToken("t4", "g1", alice)
	must(t, s.CreateAccessToken(ctx, t4))
	t4.RevokeTime = revoked
	wantAccessToken(t, s, t4)
	must(t, s.RevokeGrant(ctx, "g1", revoked.Add(time.Hour)))
	wantAccessToken(t, s, t1)
	wantAccessToken(t, s, t4)
	got, err = s.RedeemGrant(ctx, g1.CodeHash, revoked.Add(2*time.Hour))
	wantErr(t, "RedeemGrant of a used code", err, authority.ErrConflict)
	wantEqual(t, "grant revoked twice", got, normGrant(g1))
}

// testDeleteExpired: DeleteExpired deletes the objects that expired before now, of every
// kind, however many, and nothing else.
func testDeleteExpired(t *testing.T, s authority.Store) {
	ctx := t.Context()
	now := t0.Add(10 * time.Hour)
	n, err := s.DeleteExpired(ctx, now)
	if err != nil || n != 0 {
		t.Fatalf("DeleteExpired of an empty store = %d, %v; want 0", n, err)
	}
	must(t, s.CreateClient(ctx, newClient("c1")))
	setCredentials(t, s, newCredential(alice), t0)
	// A used link goes when it expires too. (Set before the objects below: setting
	// credentials ends the identity's sessions and grants.)
	setCredentials(t, s, newCredential(alice), now.Add(-2*time.Hour))
	consent := authority.Consent{ClientID: "c1", IdentityID: alice, Scopes: []string{"openid"}, UpdateTime: t0}
	must(t, s.PutConsent(ctx, consent))

	// Of each kind: one expired, one expiring at now, one expiring later.
	expiries := map[string]time.Time{"expired": now.Add(-time.Second), "now": norm(now), "later": now.Add(time.Second)}
	for name, exp := range expiries {
		r := newAuthRequest("ar-" + name)
		r.ExpireTime = exp
		must(t, s.CreateAuthRequest(ctx, r))
		sess := newSession("cookie-"+name, alice)
		sess.ExpireTime = exp
		must(t, s.CreateSession(ctx, sess))
		g := newGrant("g-"+name, "code-"+name, "c1", alice)
		g.ExpireTime = exp
		must(t, s.CreateGrant(ctx, g))
		at := newAccessToken("token-"+name, "g-"+name, alice)
		at.ExpireTime = exp
		must(t, s.CreateAccessToken(ctx, at))
		l := newLink("link-"+name, alice, t0)
		l.ExpireTime = exp
		must(t, s.CreateCredentialLink(ctx, l, nil))
		must(t, s.PutKnownDevice(ctx, authority.KnownDevice{DeviceHash: hash("device-" + name), IdentityID: alice, CreateTime: t0, ExpireTime: exp}))
		// Claimed twice an hour before: free, then a minute's wait; forgotten at exp.
		k := throttle(name)
		claim(t, s, exp.Add(-time.Hour), time.Time{}, k)
		claim(t, s, exp.Add(-time.Hour), time.Time{}, k)
	}

	// Keys: one past its expire time, one expiring at now, one not retired.
	kOld := newKey("rs-old", "RS256", t0.Add(-10*24*time.Hour))
	kOld.RetireTime, kOld.ExpireTime = t0, expiries["expired"]
	must(t, s.AddSigningKey(ctx, kOld, time.Time{}, time.Hour))
	kNow := newKey("rs-now", "RS256", t0.Add(-9*24*time.Hour))
	kNow.RetireTime, kNow.ExpireTime = t0, expiries["now"]
	must(t, s.AddSigningKey(ctx, kNow, kOld.CreateTime, time.Hour))
	kLive := newKey("rs-live", "RS256", t0)
	must(t, s.AddSigningKey(ctx, kLive, kNow.CreateTime, time.Hour))

	// Many expired sessions.
	const many = 1234
	for i := range many {
		sess := newSession(fmt.Sprintf("old-cookie-%d", i), alice)
		sess.ExpireTime = t0.Add(time.Duration(i) * time.Microsecond)
		must(t, s.CreateSession(ctx, sess))
	}

	n, err = s.DeleteExpired(ctx, now)
	must(t, err)
	// The expired of each kind, the links of both setCredentials, the key, the sessions.
	if want := int64(7 + 2 + 1 + many); n != want {
		t.Errorf("DeleteExpired = %d, want %d", n, want)
	}
	for name := range expiries {
		gone := name == "expired"
		check := func(what string, err error) {
			t.Helper()
			switch {
			case gone && !errors.Is(err, authority.ErrNotFound):
				t.Errorf("%s %s after DeleteExpired: %v, want ErrNotFound", name, what, err)
			case !gone && err != nil:
				t.Errorf("%s %s after DeleteExpired: %v, want it kept", name, what, err)
			}
		}
		_, err := s.GetAuthRequest(ctx, "ar-"+name)
		check("authorization request", err)
		_, err = s.GetSession(ctx, hash("cookie-"+name))
		check("session", err)
		_, err = s.RedeemGrant(ctx, hash("code-"+name), now)
		check("grant", err)
		_, err = s.GetAccessToken(ctx, hash("token-"+name))
		check("access token", err)
		_, err = s.GetCredentialLink(ctx, hash("link-"+name))
		check("credential link", err)
		// Asked as of a time each was valid at.
		if known, err := s.IsKnownDevice(ctx, hash("device-"+name), alice, t0); err != nil || known == gone {
			t.Errorf("known device %s after DeleteExpired: %v, %v; want known %v", name, known, err, !gone)
		}
	}
	_, err = s.GetSession(ctx, hash("old-cookie-0"))
	wantErr(t, "GetSession of an old session after DeleteExpired", err, authority.ErrNotFound)
	// The expired key is gone, even from a list as of a time it had not expired at.
	wantKeys(t, s, t0, kNow, kLive)
	// What does not expire stays.
	wantCredential(t, s, newCredential(alice))
	if _, err := s.GetClient(ctx, "c1"); err != nil {
		t.Errorf("GetClient after DeleteExpired: %v", err)
	}
	if _, err := s.GetConsent(ctx, "c1", alice); err != nil {
		t.Errorf("GetConsent after DeleteExpired: %v", err)
	}

	n, err = s.DeleteExpired(ctx, now)
	if err != nil || n != 0 {
		t.Fatalf("DeleteExpired again = %d, %v; want 0", n, err)
	}
	// A throttle kept still makes the attempt after its two wait; one deleted starts afresh.
	for name, exp := range expiries {
		gone := name == "expired"
		wait, err := s.ClaimLoginAttempt(ctx, []authority.ThrottleKey{throttle(name)}, exp.Add(-time.Hour))
		if err != nil || wait.IsZero() != gone {
			t.Errorf("login throttle %s after DeleteExpired: wait %v, %v; want it kept %v", name, wait, err, !gone)
		}
	}
}

// concurrently runs fn(i) for i in [0, n) at the same time and returns the errors.
func concurrently(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Go(func() {
			start.Wait()
			errs[i] = fn(i)
		})
	}
	start.Done()
	done.Wait()
	return errs
}

const racers = 16

// oneWinner fails unless exactly one of errs is nil and the others are ErrConflict, and
// returns the index of the nil one.
func oneWinner(t *testing.T, what string, errs []error) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("%s: calls %d and %d both succeeded", what, winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, authority.ErrConflict):
			t.Fatalf("%s: call %d: %v, want ErrConflict", what, i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("%s: no call succeeded", what)
	}
	return winner
}

// testConcurrentUpdateClient: of updates that all read the same registration token, one
// wins.
func testConcurrentUpdateClient(t *testing.T, s authority.Store) {
	ctx := t.Context()
	c := newClient("c1")
	must(t, s.CreateClient(ctx, c))
	updates := make([]authority.Client, racers)
	errs := concurrently(racers, func(i int) error {
		updates[i] = c
		updates[i].RegistrationTokenHash = hash(fmt.Sprintf("token of update %d", i))
		updates[i].Metadata.ClientName = fmt.Sprintf("update %d", i)
		return s.UpdateClient(ctx, updates[i], c.RegistrationTokenHash)
	})
	w := oneWinner(t, "UpdateClient", errs)
	wantClient(t, s, updates[w])
}

// testConcurrentUseInitialAccessToken: a token good for two registrations makes two,
// however many try at once.
func testConcurrentUseInitialAccessToken(t *testing.T, s authority.Store) {
	ctx := t.Context()
	tok := newInitialToken("twice", 2)
	must(t, s.CreateInitialAccessToken(ctx, tok))
	errs := concurrently(racers, func(i int) error {
		return s.UseInitialAccessToken(ctx, tok.TokenHash, t0, newClient(fmt.Sprintf("c%d", i)))
	})
	registered := 0
	for i, err := range errs {
		switch {
		case err == nil:
			registered++
			wantClient(t, s, newClient(fmt.Sprintf("c%d", i)))
		case !errors.Is(err, authority.ErrConflict):
			t.Fatalf("call %d: %v, want ErrConflict", i, err)
		default:
			_, err := s.GetClient(ctx, fmt.Sprintf("c%d", i))
			wantErr(t, "GetClient of a refused registration", err, authority.ErrNotFound)
		}
	}
	if registered != 2 {
		t.Fatalf("%d registrations with a token good for 2", registered)
	}
	tok.Uses = 2
	wantInitialToken(t, s, tok)
}

func testConcurrentRedeemGrant(t *testing.T, s authority.Store) {
	ctx := t.Context()
	must(t, s.CreateClient(ctx, newClient("c1")))
	g := newGrant("g1", "code1", "c1", alice)
	must(t, s.CreateGrant(ctx, g))
	grants := make([]authority.Grant, racers)
	errs := concurrently(racers, func(i int) error {
		var err error
		grants[i], err = s.RedeemGrant(ctx, g.CodeHash, t0.Add(time.Duration(i+1)*time.Second))
		return err
	})
	w := oneWinner(t, "RedeemGrant", errs)
	g.UseTime = t0.Add(time.Duration(w+1) * time.Second)
	for i, got := range grants {
		wantEqual(t, fmt.Sprintf("grant returned to call %d", i), got, normGrant(g))
	}
}

func testConcurrentRedeemCredentialLink(t *testing.T, s authority.Store) {
	ctx := t.Context()
	l := newLink("link1", alice, t0)
	must(t, s.CreateCredentialLink(ctx, l, nil))
	creds := make([]authority.HolderCredential, racers)
	errs := concurrently(racers, func(i int) error {
		creds[i] = newCredential(alice)
		creds[i].PasswordHash = fmt.Sprintf("$argon2id$choice-%d", i)
		return s.RedeemCredentialLink(ctx, l.TokenHash, t0.Add(time.Duration(i+1)*time.Second), creds[i], nil)
	})
	w := oneWinner(t, "RedeemCredentialLink", errs)
	wantCredential(t, s, creds[w])
	l.UseTime = t0.Add(time.Duration(w+1) * time.Second)
	wantLink(t, s, l)
}

func testConcurrentTOTPStep(t *testing.T, s authority.Store) {
	setCredentials(t, s, newCredential(alice), t0)
	errs := concurrently(racers, func(int) error { return s.UseTOTPStep(t.Context(), alice, 200) })
	oneWinner(t, "UseTOTPStep", errs)
}

// testConcurrentLoginAttempts: of concurrent attempts against a budget, only as many go
// through as it has free attempts left and the others are told to wait: a budget with one
// left, and a budget nobody has claimed yet, with all of its two (a lock needs a row).
func testConcurrentLoginAttempts(t *testing.T, s authority.Store) {
	ctx := t.Context()
	primed := throttle("racy")
	claim(t, s, t0, time.Time{}, primed)
	for _, tc := range []struct {
		name string
		key  authority.ThrottleKey
		free int
	}{
		{"one free attempt left", primed, 1},
		{"a budget not claimed before", throttle("fresh"), 2},
	} {
		waits := make([]time.Time, racers)
		errs := concurrently(racers, func(i int) error {
			var err error
			waits[i], err = s.ClaimLoginAttempt(ctx, []authority.ThrottleKey{tc.key}, t0)
			return err
		})
		through := 0
		for i, err := range errs {
			must(t, err)
			switch {
			case waits[i].IsZero():
				through++
			case !waits[i].Equal(norm(t0.Add(time.Minute))):
				t.Fatalf("%s: attempt %d told to wait until %v, want a minute", tc.name, i, waits[i].Sub(t0))
			}
		}
		if through != tc.free {
			t.Fatalf("%s: %d of %d concurrent attempts went through, want %d", tc.name, through, racers, tc.free)
		}
		// Every attempt that went through counted: the next waits until the first backoff
		// is over, then gets the second wait.
		claim(t, s, t0.Add(time.Minute), time.Time{}, tc.key)
		claim(t, s, t0.Add(time.Minute), t0.Add(3*time.Minute), tc.key)
	}
}

// testConcurrentAddSigningKey: of instances rotating at once, one does.
func testConcurrentAddSigningKey(t *testing.T, s authority.Store) {
	ctx := t.Context()
	rs1 := newKey("rs1", "RS256", t0)
	must(t, s.AddSigningKey(ctx, rs1, time.Time{}, time.Hour))
	keys := make([]authority.SigningKey, racers)
	errs := concurrently(racers, func(i int) error {
		keys[i] = newKey(fmt.Sprintf("rs2-%d", i), "RS256", t0.Add(24*time.Hour+time.Duration(i)*time.Second))
		return s.AddSigningKey(ctx, keys[i], rs1.CreateTime, time.Hour)
	})
	w := oneWinner(t, "AddSigningKey", errs)
	rs1.RetireTime, rs1.ExpireTime = keys[w].SignTime, keys[w].SignTime.Add(time.Hour)
	wantKeys(t, s, t0, rs1, keys[w])
}
