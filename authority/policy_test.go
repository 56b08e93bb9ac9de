package authority

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The rules behind the token and authorization endpoints, the registration endpoint and the
// initial access tokens, one by one; the end-to-end tests in server/ drive them through the
// HTTPS listener.

var (
	confidentialClient = Client{ID: "conf", SecretHash: hashToken("secret"), Metadata: ClientMetadata{TokenEndpointAuthMethod: "client_secret_basic"}}
	publicClient       = Client{ID: "pub", Metadata: ClientMetadata{TokenEndpointAuthMethod: "none"}}
)

func challengeOf(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// TestAuthorizePKCEPolicy: PKCE at the authorization endpoint, by client and RequirePKCE.
func TestAuthorizePKCEPolicy(t *testing.T) {
	verifier := strings.Repeat("v", 43)
	challenge := challengeOf(verifier)
	withPKCE := url.Values{"code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	for _, tc := range []struct {
		name        string
		client      Client
		requirePKCE bool
		pkce        url.Values
		// refusal is a part of the error description; empty: accepted.
		refusal string
	}{
		{"confidential without PKCE", confidentialClient, false, nil, ""},
		{"confidential with PKCE", confidentialClient, false, withPKCE, ""},
		{"confidential without PKCE, RequirePKCE", confidentialClient, true, nil, "PKCE is required"},
		{"confidential with PKCE, RequirePKCE", confidentialClient, true, withPKCE, ""},
		{"public without PKCE", publicClient, false, nil, "PKCE is required for public clients"},
		{"public with PKCE", publicClient, false, withPKCE, ""},
		{"plain method", confidentialClient, false, url.Values{"code_challenge": {challenge}, "code_challenge_method": {"plain"}}, "must be S256"},
		{"no method (plain by default)", confidentialClient, false, url.Values{"code_challenge": {challenge}}, "must be S256"},
		{"method without a challenge", confidentialClient, false, url.Values{"code_challenge_method": {"S256"}}, "without a code_challenge"},
		{"challenge too short", publicClient, false, url.Values{"code_challenge": {challenge[:42]}, "code_challenge_method": {"S256"}}, "43 characters"},
		{"challenge not base64url", publicClient, false, url.Values{"code_challenge": {strings.Repeat("/", 43)}, "code_challenge_method": {"S256"}}, "43 characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := url.Values{"response_type": {"code"}, "scope": {"openid"}, "prompt": {""}}
			for k, v := range tc.pkce {
				q[k] = v
			}
			p, oe := parseAuthParams(q, tc.client, "https://rp.test/cb", tc.requirePKCE)
			switch {
			case tc.refusal == "" && oe != nil:
				t.Fatalf("refused: %v", oe)
			case tc.refusal == "" && p.CodeChallenge != tc.pkce.Get("code_challenge"):
				t.Fatalf("code challenge %q kept, want %q", p.CodeChallenge, tc.pkce.Get("code_challenge"))
			case tc.refusal != "" && (oe == nil || oe.Code != "invalid_request" || !strings.Contains(oe.Description, tc.refusal)):
				t.Fatalf("got %v, want invalid_request saying %q", oe, tc.refusal)
			}
		})
	}
}

// TestTokenPKCEPolicy: PKCE at the token endpoint, downgrade-protected both ways.
func TestTokenPKCEPolicy(t *testing.T) {
	verifier := strings.Repeat("v", 43)
	challenge := challengeOf(verifier)
	for _, tc := range []struct {
		name                string
		verifier, challenge string
		required            bool
		ok                  bool
	}{
		{"neither", "", "", false, true},
		{"both, matching", verifier, challenge, false, true},
		{"both, matching, required", verifier, challenge, true, true},
		{"challenge without verifier", "", challenge, false, false},
		{"verifier without challenge", verifier, "", false, false},
		{"neither, required", "", "", true, false},
		{"wrong verifier", strings.Repeat("w", 43), challenge, false, false},
		{"challenge sent as the verifier", challenge, challenge, false, false},
		{"verifier too short", verifier[:42], challengeOf(verifier[:42]), false, false},
		{"verifier too long", strings.Repeat("v", 129), challengeOf(strings.Repeat("v", 129)), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			oe := checkPKCE(tc.verifier, tc.challenge, tc.required)
			if (oe == nil) != tc.ok || (oe != nil && oe.Code != "invalid_grant") {
				t.Fatalf("checkPKCE = %v, want accepted: %v (else invalid_grant)", oe, tc.ok)
			}
		})
	}
}

// newTestAuthority is an Authority whose rules can be called without a database: clients
// come from its cache, which holds the given ones for an hour, and the store knows none.
func newTestAuthority(t *testing.T, now time.Time, cfg Config, clients ...Client) *Authority {
	t.Helper()
	cfg.Now = func() time.Time { return now }
	if cfg.ClientCacheTTL == 0 {
		cfg.ClientCacheTTL = time.Hour
	}
	a := &Authority{cfg: cfg, store: nilStore{}}
	for _, c := range clients {
		a.cacheClient(c, now)
	}
	return a
}

// TestAuthenticateClient: a confidential client authenticates with its secret, the way it
// registered, until the secret expires; a public client with its client_id alone.
func TestAuthenticateClient(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	post := confidentialClient
	post.ID, post.Metadata.TokenEndpointAuthMethod = "post", "client_secret_post"
	expired := confidentialClient
	expired.ID, expired.SecretExpireTime = "expired", now
	expiring := confidentialClient
	expiring.ID, expiring.SecretExpireTime = "expiring", now.Add(time.Second)
	a := newTestAuthority(t, now, Config{}, confidentialClient, publicClient, post, expired, expiring)
	for _, tc := range []struct {
		name string
		// basic is id and secret sent with HTTP Basic; form the body.
		basic []string
		form  url.Values
		// refusal is a part of the invalid_client description; empty: authenticated.
		refusal string
	}{
		{"basic", []string{"conf", "secret"}, nil, ""},
		{"basic, wrong secret", []string{"conf", "wrong"}, nil, "failed"},
		{"basic client posting", nil, url.Values{"client_id": {"conf"}, "client_secret": {"secret"}}, "registered client_secret_basic, not client_secret_post"},
		{"basic client without a secret", nil, url.Values{"client_id": {"conf"}}, "authentication is required"},
		{"post", nil, url.Values{"client_id": {"post"}, "client_secret": {"secret"}}, ""},
		{"post client with basic", []string{"post", "secret"}, nil, "registered client_secret_post, not client_secret_basic"},
		{"public, client_id in the body", nil, url.Values{"client_id": {"pub"}}, ""},
		{"public, Basic without a password", []string{"pub", ""}, nil, ""},
		{"public with a secret", nil, url.Values{"client_id": {"pub"}, "client_secret": {"secret"}}, "none"},
		{"public with a Basic secret", []string{"pub", "secret"}, nil, "none"},
		{"unknown client", nil, url.Values{"client_id": {"nobody"}}, "failed"},
		{"nobody", nil, nil, "authentication is required"},
		{"expired secret", []string{"expired", "secret"}, nil, "expired at 2026-01-02T03:04:05Z"},
		{"expired secret, wrong", []string{"expired", "wrong"}, nil, "failed"},
		{"secret about to expire", []string{"expiring", "secret"}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/token", strings.NewReader(tc.form.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tc.basic != nil {
				r.SetBasicAuth(tc.basic[0], tc.basic[1])
			}
			if err := r.ParseForm(); err != nil {
				t.Fatal(err)
			}
			c, oe, err := a.authenticateClient(r, now)
			switch {
			case err != nil:
				t.Fatal(err)
			case tc.refusal == "" && oe != nil:
				t.Fatalf("refused: %v", oe)
			case tc.refusal == "" && c.ID == "":
				t.Fatal("no client")
			case tc.refusal != "" && (oe == nil || oe.Code != "invalid_client" || !strings.Contains(oe.Description, tc.refusal)):
				t.Fatalf("got %v, want invalid_client saying %q", oe, tc.refusal)
			}
		})
	}
}

// TestRegistrationPublicClients: token_endpoint_auth_method none is accepted for native and
// web clients, which then get no secret; other clients get one, which expires after
// ClientSecretTTL when that is set.
func TestRegistrationPublicClients(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, ttl := range []time.Duration{0, time.Hour} {
		a := newTestAuthority(t, now, Config{SubjectType: SubjectPairwise, ClientSecretTTL: ttl})
		for _, tc := range []struct {
			appType, method string
			public          bool
		}{
			{"native", "none", true}, {"web", "none", true}, {"native", "client_secret_basic", false}, {"web", "", false},
			{"web", "client_secret_post", false},
		} {
			md, err := a.clientMetadata(t.Context(), registrationRequest{ApplicationType: tc.appType, TokenEndpointAuthMethod: tc.method, RedirectURIs: []string{"https://rp.test/cb"}})
			if err != nil {
				t.Fatalf("%s %q: %v", tc.appType, tc.method, err)
			}
			c := Client{Metadata: md}
			secret := a.issueSecret(&c, now)
			switch {
			case c.public() != tc.public:
				t.Fatalf("%s %q: public %v", tc.appType, tc.method, c.public())
			case tc.public && (secret != "" || c.SecretHash != nil || !c.SecretExpireTime.IsZero()):
				t.Fatalf("%s %q: a public client got a secret", tc.appType, tc.method)
			case !tc.public && (secret == "" || string(c.SecretHash) != string(hashToken(secret))):
				t.Fatalf("%s %q: no secret", tc.appType, tc.method)
			case !tc.public && ttl == 0 && !c.SecretExpireTime.IsZero(),
				!tc.public && ttl > 0 && !c.SecretExpireTime.Equal(now.Add(ttl)):
				t.Fatalf("%s %q: secret expires %v with ttl %v", tc.appType, tc.method, c.SecretExpireTime, ttl)
			}
			if info := a.clientInfo(c); (ttl > 0 && !tc.public) != (info.ClientSecretExpiresAt != 0) {
				t.Fatalf("client_secret_expires_at %d with ttl %v, public %v", info.ClientSecretExpiresAt, ttl, tc.public)
			}
		}
		for _, method := range []string{"private_key_jwt", "client_secret_jwt", "tls_client_auth"} {
			if _, err := a.clientMetadata(t.Context(), registrationRequest{TokenEndpointAuthMethod: method, RedirectURIs: []string{"https://rp.test/cb"}}); err == nil {
				t.Fatalf("token_endpoint_auth_method %s accepted", method)
			}
		}
	}
}

// TestClientUpdateFields: RFC 7592 §2.2's rules for the members of an update that are not
// metadata.
func TestClientUpdateFields(t *testing.T) {
	id, secret := confidentialClient.ID, "secret"
	other, wrong := "other", "wrong"
	raw := []byte(`"x"`)
	for _, tc := range []struct {
		name   string
		client Client
		fields clientUpdateFields
		ok     bool
	}{
		{"client_id", confidentialClient, clientUpdateFields{ClientID: &id}, true},
		{"client_id and the secret", confidentialClient, clientUpdateFields{ClientID: &id, ClientSecret: &secret}, true},
		{"no client_id", confidentialClient, clientUpdateFields{}, false},
		{"another client_id", confidentialClient, clientUpdateFields{ClientID: &other}, false},
		{"a wrong secret", confidentialClient, clientUpdateFields{ClientID: &id, ClientSecret: &wrong}, false},
		{"a secret for a public client", publicClient, clientUpdateFields{ClientID: &publicClient.ID, ClientSecret: &secret}, false},
		{"registration_access_token", confidentialClient, clientUpdateFields{ClientID: &id, RegistrationAccessToken: raw}, false},
		{"registration_client_uri", confidentialClient, clientUpdateFields{ClientID: &id, RegistrationClientURI: raw}, false},
		{"client_secret_expires_at", confidentialClient, clientUpdateFields{ClientID: &id, ClientSecretExpiresAt: raw}, false},
		{"client_id_issued_at", confidentialClient, clientUpdateFields{ClientID: &id, ClientIDIssuedAt: raw}, false},
	} {
		if oe := tc.fields.check(tc.client); (oe == nil) != tc.ok || (oe != nil && oe.Code != "invalid_request") {
			t.Errorf("%s: %v, want accepted: %v (else invalid_request)", tc.name, oe, tc.ok)
		}
	}
}

// TestInitialAccessTokenState: a token works until revoked, expired or used up.
func TestInitialAccessTokenState(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name string
		tok  InitialAccessToken
		want string
	}{
		{"fresh", InitialAccessToken{}, TokenActive},
		{"uses left", InitialAccessToken{MaxUses: 2, Uses: 1}, TokenActive},
		{"any number of uses", InitialAccessToken{Uses: 1000}, TokenActive},
		{"used up", InitialAccessToken{MaxUses: 2, Uses: 2}, TokenUsedUp},
		{"before its expiry", InitialAccessToken{ExpireTime: now.Add(time.Microsecond)}, TokenActive},
		{"at its expiry", InitialAccessToken{ExpireTime: now}, TokenExpired},
		{"revoked", InitialAccessToken{RevokeTime: now.Add(-time.Hour), ExpireTime: now.Add(-time.Minute)}, TokenRevoked},
	} {
		if got := tc.tok.State(now); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestClientCache: a client is answered from memory for ClientCacheTTL, and forgotten at
// once on update or deletion.
func TestClientCache(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := now
	a := &Authority{cfg: Config{ClientCacheTTL: 2 * time.Second, Now: func() time.Time { return clock }}}
	a.cacheClient(confidentialClient, now)
	if _, err := a.client(t.Context(), confidentialClient.ID); err != nil {
		t.Fatalf("within the TTL: %v", err)
	}
	a.forgetClient(confidentialClient.ID)
	if _, ok := a.clients.m[confidentialClient.ID]; ok {
		t.Fatal("forgotten, yet cached")
	}
	a.cacheClient(confidentialClient, now)
	clock = now.Add(2 * time.Second)
	a.store = nilStore{}
	if _, err := a.client(t.Context(), confidentialClient.ID); err != ErrNotFound {
		t.Fatalf("after the TTL: %v, want the store's answer", err)
	}
	off := &Authority{cfg: Config{ClientCacheTTL: -1, Now: func() time.Time { return now }}, store: nilStore{}}
	off.cacheClient(confidentialClient, now)
	if _, err := off.client(t.Context(), confidentialClient.ID); err != ErrNotFound {
		t.Fatalf("with the cache off: %v, want the store's answer", err)
	}
}

// nilStore knows no clients.
type nilStore struct{ Store }

func (nilStore) GetClient(ctx context.Context, id string) (Client, error) {
	return Client{}, ErrNotFound
}
