package server_test

import (
	"bytes"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/id4me/id4me-registry/authority"
	"github.com/id4me/id4me-registry/internal/storedb"
)

// TestAuthoritySigningKeysSealedAtRest: an authority whose signing keys are sealed with a
// key-encryption key logs a holder in, the relying party verifies the ID token and signed
// userinfo against the JWKS and the agent the access token, while the database holds no key
// that parses as a JWK or has a private member.
func TestAuthoritySigningKeysSealedAtRest(t *testing.T) {
	kek, err := authority.ParseKeyEncryptionKey(authority.GenerateKeyEncryptionKey())
	if err != nil {
		t.Fatal(err)
	}
	e := newAuthEnv(t, envOptions{configureKeys: func(c *authority.KeyConfig) { c.KEK = kek }})
	agent, claims := e.startAgent("alpha")
	h := e.holderFor(agent, "alice.example.test", false)
	claims.Claims["alice.example.test"] = map[string]any{"email": "alice@example.test"}
	for _, alg := range []string{"RS256", "ES256"} {
		rp := e.newRP(map[string]any{"id_token_signed_response_alg": alg, "userinfo_signed_response_alg": alg})
		res := e.login(rp, h, map[string]string{"claims": emailClaims})
		if res.UserinfoType != "application/jwt" || res.Userinfo["sub"] != res.Claims["sub"] {
			t.Fatalf("%s: userinfo %s %v", alg, res.UserinfoType, res.Userinfo)
		}
		if got, err := rp.DistributedClaims(res.Userinfo); err != nil || got["email"] != "alice@example.test" {
			t.Fatalf("%s: the agent's answer %v, %v", alg, got, err)
		}
	}

	rows, err := storedb.DB(e.store).Raw("SELECT id, private_jwk FROM authority_signing_keys").Rows()
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for ; rows.Next(); n++ {
		var id string
		var stored []byte
		if err := rows.Scan(&id, &stored); err != nil {
			t.Fatal(err)
		}
		var jwk jose.JSONWebKey
		if jwk.UnmarshalJSON(stored) == nil || bytes.Contains(stored, []byte(`"d"`)) || !bytes.Contains(stored, []byte(kek.ID())) {
			t.Fatalf("key %s is stored as %.60s…; want it sealed with %s", id, stored, kek.ID())
		}
	}
	if n != 2 {
		t.Fatalf("%d signing keys stored, want 2", n)
	}
}
