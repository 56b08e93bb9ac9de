package authority_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/agent/accesstoken"
	"github.com/id4me/id4me-registry/authority"
	"github.com/id4me/id4me-registry/internal/oidctest"
	"github.com/id4me/id4me-registry/registry"
)

// agentTokenOf returns the access token for the agent in a userinfo answer.
func agentTokenOf(t *testing.T, userinfo map[string]any) string {
	t.Helper()
	src, _ := userinfo["_claim_sources"].(map[string]any)["src1"].(map[string]any)
	tok, _ := src["access_token"].(string)
	if tok == "" {
		t.Fatalf("userinfo %v has no agent access token", userinfo)
	}
	return tok
}

// agentTokenAt asks rp's userinfo with access and returns the agent token in the answer.
func agentTokenAt(t *testing.T, rp *oidctest.RP, access string) string {
	t.Helper()
	u, _, _, err := rp.Userinfo(access)
	if err != nil {
		t.Fatal(err)
	}
	return agentTokenOf(t, u)
}

// TestAuthorityAgentTokenPerAccessToken: repeated userinfo calls with one RP access token
// give the agent the same token, byte for byte, later in the access token's life too. With
// ES256, whose signatures are randomised, equal bytes mean one signature. The token carries
// the access token's iat and exp, verifies with agent/accesstoken, and the agent answers it
// every time. Another access token gets another jti. With RS256 another instance on the same
// store makes the same bytes.
func TestAuthorityAgentTokenPerAccessToken(t *testing.T) {
	for _, alg := range []string{authority.RS256, authority.ES256} {
		t.Run(alg, func(t *testing.T) {
			ctx := context.Background()
			e := newAuthEnv(t, envOptions{configureAuthority: func(c *authority.Config) { c.AgentTokenAlg = alg }})
			agent, claims := e.startAgent("alpha")
			h := e.holderFor(agent, "alice.example.test", false)
			claims.Claims["alice.example.test"] = map[string]any{"email": "alice@example.test"}
			rp := e.newRP(nil)
			issued := e.clock.Now()
			res := e.login(rp, h, map[string]string{"claims": emailClaims})
			access := res.Token.AccessToken
			first := agentTokenOf(t, res.Userinfo)

			e.clock.Advance(4 * time.Minute)
			for i := range 3 {
				if got := agentTokenAt(t, rp, access); got != first {
					t.Fatalf("userinfo call %d gave another agent token:\n%s\nfirst:\n%s", i+2, got, first)
				}
			}
			u, _, _, err := rp.Userinfo(access)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rp.DistributedClaims(u); err != nil {
				t.Fatalf("the agent refused the token: %v", err)
			}
			if _, err := rp.DistributedClaims(u); err != nil {
				t.Fatalf("the agent refused the token the second time: %v", err)
			}
			if n := len(claims.Tokens()); n != 2 {
				t.Errorf("the agent accepted %d tokens, want 2", n)
			}

			v, err := accesstoken.NewVerifier(ctx, e.rpClient, e.issuer, claims.Issuer, accesstoken.WithClock(e.clock.Now))
			if err != nil {
				t.Fatal(err)
			}
			tok, err := v.Verify(ctx, first)
			if err != nil {
				t.Fatalf("the agent token from the cache does not verify: %v", err)
			}
			if want := issued.Truncate(time.Second); !tok.IssuedAt.Equal(want) {
				t.Errorf("iat %v, want the access token's issue time %v", tok.IssuedAt, want)
			}
			if want := time.Duration(res.Token.ExpiresIn) * time.Second; tok.Expiry.Sub(tok.IssuedAt) != want || want != 10*time.Minute {
				t.Errorf("exp − iat = %v, want the access token's life %v (10m)", tok.Expiry.Sub(tok.IssuedAt), want)
			}
			if tok.ID == "" {
				t.Error("no jti")
			}

			// Another login, another access token: another jti.
			other := e.login(rp, h, map[string]string{"claims": emailClaims})
			tok2, err := v.Verify(ctx, agentTokenOf(t, other.Userinfo))
			if err != nil {
				t.Fatal(err)
			}
			if tok2.ID == tok.ID {
				t.Errorf("two access tokens gave agent tokens with the same jti %q", tok.ID)
			}

			if alg != authority.RS256 {
				return
			}
			client, base := e.otherInstance(func(*authority.Config) {})
			req, _ := http.NewRequest(http.MethodGet, base+"/userinfo", nil)
			req.Header.Set("Authorization", "Bearer "+access)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var m map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("userinfo at the other instance: %d, %v", resp.StatusCode, err)
			}
			if got := agentTokenOf(t, m); got != first {
				t.Errorf("the other instance made another RS256 agent token:\n%s\nwant:\n%s", got, first)
			}
		})
	}
}

// TestAuthorityAgentTokenAfterTransfer: after the identifier moves to another agent, userinfo
// with the same access token names the new agent in the agent token's aud, and the new agent
// answers it.
func TestAuthorityAgentTokenAfterTransfer(t *testing.T) {
	ctx := context.Background()
	e := newAuthEnv(t, envOptions{})
	alpha, alphaClaims := e.startAgent("alpha")
	beta, betaClaims := e.startAgent("beta")
	h := e.holderFor(alpha, "alice.example.test", false)
	alphaClaims.Claims["alice.example.test"] = map[string]any{"email": "alice@example.test"}
	betaClaims.Claims["alice.example.test"] = map[string]any{"email": "alice@beta.example.test"}
	rp := e.newRP(nil)
	res := e.login(rp, h, map[string]string{"claims": emailClaims})
	access := res.Token.AccessToken
	before := agentTokenOf(t, res.Userinfo)
	if again := agentTokenAt(t, rp, access); again != before {
		t.Fatal("a repeated userinfo call gave another agent token")
	}

	c, err := e.registry.CreateChallenge(ctx, as(beta), "alice.example.test", registry.PurposeTransfer)
	e.check(err)
	c, err = e.registry.VerifyChallenge(ctx, as(beta), c.ID)
	e.check(err)
	if _, err := e.registry.RequestTransfer(ctx, as(beta), c.ID, ""); err != nil {
		t.Fatalf("RequestTransfer: %v", err)
	}
	if res, err := e.resolver.Resolve(ctx, "alice.example.test"); err != nil || res.AgentIssuer != betaClaims.Issuer {
		t.Fatalf("after the transfer the identifier resolves to %+v, %v; want the new agent", res, err)
	}

	u, _, _, err := rp.Userinfo(access)
	if err != nil {
		t.Fatal(err)
	}
	after := agentTokenOf(t, u)
	if after == before {
		t.Fatal("after the transfer userinfo gave the old agent's token")
	}
	v, err := accesstoken.NewVerifier(ctx, e.rpClient, e.issuer, betaClaims.Issuer, accesstoken.WithClock(e.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := v.Verify(ctx, after)
	if err != nil {
		t.Fatalf("the token after the transfer is not the new agent's: %v", err)
	}
	if len(tok.Audience) != 1 || tok.Audience[0] != betaClaims.Issuer {
		t.Errorf("aud %v, want the new agent %s", tok.Audience, betaClaims.Issuer)
	}
	got, err := rp.DistributedClaims(u)
	if err != nil || got["email"] != "alice@beta.example.test" {
		t.Errorf("claims after the transfer: %v, %v; want the new agent's", got, err)
	}
	if again := agentTokenAt(t, rp, access); again != after {
		t.Error("after the transfer a repeated userinfo call gave another agent token")
	}
}

// TestAuthorityAgentTokenRevoked: once its access token is revoked (by a replayed code),
// userinfo answers no more, though the agent token was kept.
func TestAuthorityAgentTokenRevoked(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	agent := e.newAgent("alpha")
	h := e.holderFor(agent, "alice.example.test", false)
	rp := e.newRP(nil)
	req, code := e.authCode(rp, h, map[string]string{"claims": emailClaims})
	status, m, _ := e.postToken(rp.Redemption(req, code))
	access, _ := m["access_token"].(string)
	if status != http.StatusOK || access == "" {
		t.Fatalf("token: %d %v", status, m)
	}
	if agentTokenAt(t, rp, access) != agentTokenAt(t, rp, access) {
		t.Fatal("a repeated userinfo call gave another agent token")
	}
	if status, _, _ := e.postToken(rp.Redemption(req, code)); status != http.StatusBadRequest {
		t.Fatalf("replayed code: %d, want 400", status)
	}
	e.wantUserinfoRefused(t, access)
}

// TestAuthoritySignedUserinfoPerAccessToken: a client that registered signed userinfo gets
// one signed answer per access token: repeated calls give the same bytes (ES256 signatures
// are randomised, so equal bytes mean one signature), with the iat of the first call, and
// the answer verifies. Another access token gets its own; a revoked one gets none; a client
// that registered encryption gets a new JWE each time.
func TestAuthoritySignedUserinfoPerAccessToken(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	agent, claims := e.startAgent("alpha")
	h := e.holderFor(agent, "alice.example.test", false)
	claims.Claims["alice.example.test"] = map[string]any{"email": "alice@example.test"}
	rp := e.newRP(map[string]any{"userinfo_signed_response_alg": "ES256"})
	res := e.login(rp, h, map[string]string{"claims": emailClaims})
	access := res.Token.AccessToken

	first := e.clock.Now()
	u, body, ct, err := rp.Userinfo(access)
	if err != nil || ct != "application/jwt" {
		t.Fatalf("signed userinfo: %v, content type %q", err, ct)
	}
	if iat, _ := u["iat"].(float64); int64(iat) != first.Unix() {
		t.Fatalf("iat %v, want %d", u["iat"], first.Unix())
	}
	e.clock.Advance(2 * time.Minute)
	for i := range 2 {
		_, again, _, err := rp.Userinfo(access)
		if err != nil {
			t.Fatal(err)
		}
		if string(again) != string(body) {
			t.Fatalf("call %d gave another signed answer:\n%s\nfirst:\n%s", i+2, again, body)
		}
	}
	if _, err := rp.DistributedClaims(u); err != nil {
		t.Fatalf("the agent refused the token of the signed answer: %v", err)
	}

	other := e.login(rp, h, map[string]string{"claims": emailClaims})
	if _, b, _, err := rp.Userinfo(other.Token.AccessToken); err != nil || string(b) == string(body) {
		t.Fatalf("another access token: %v, same answer %v", err, string(b) == string(body))
	}

	private, public := rpEncryptionKey(t, "EC")
	enc := e.newRP(map[string]any{
		"userinfo_signed_response_alg": "ES256", "jwks": jwkSet(public),
		"userinfo_encrypted_response_alg": "ECDH-ES", "userinfo_encrypted_response_enc": "A128GCM",
	})
	enc.DecryptionKey = private
	encAccess := e.login(enc, h, map[string]string{"claims": emailClaims}).Token.AccessToken
	_, b1, _, err1 := enc.Userinfo(encAccess)
	_, b2, _, err2 := enc.Userinfo(encAccess)
	if err1 != nil || err2 != nil || string(b1) == string(b2) {
		t.Fatalf("encrypted userinfo: %v, %v; the same JWE twice: %v", err1, err2, string(b1) == string(b2))
	}

	rp2 := e.newRP(map[string]any{"userinfo_signed_response_alg": "RS256"})
	req, code := e.authCode(rp2, h, map[string]string{"claims": emailClaims})
	status, m, _ := e.postToken(rp2.Redemption(req, code))
	revoked, _ := m["access_token"].(string)
	if status != http.StatusOK || revoked == "" {
		t.Fatalf("token: %d %v", status, m)
	}
	if _, _, _, err := rp2.Userinfo(revoked); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := e.postToken(rp2.Redemption(req, code)); status != http.StatusBadRequest {
		t.Fatalf("replayed code: %d, want 400", status)
	}
	e.wantUserinfoRefused(t, revoked)
}
