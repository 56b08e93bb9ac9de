package authority_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/id4me/id4me-registry/authority"
)

// TestAuthorityDiscovery checks that discovery says what an ID4me relying party needs, and
// that the JWKS publishes both signing keys without private parts.
func TestAuthorityDiscovery(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	get := func(path string) map[string]any {
		resp, err := e.rpClient.Get(e.issuer + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %v", path, resp.StatusCode, err)
		}
		return m
	}
	d := get("/.well-known/openid-configuration")
	want := map[string]string{
		"issuer":                                e.issuer,
		"registration_endpoint":                 e.issuer + "/register",
		"jwks_uri":                              e.issuer + "/jwks.json",
		"claims_parameter_supported":            "true",
		"response_types_supported":              `["code"]`,
		"code_challenge_methods_supported":      `["S256"]`,
		"id_token_signing_alg_values_supported": `["RS256","ES256"]`,
		"userinfo_signing_alg_values_supported": `["RS256","ES256"]`,
		"subject_types_supported":               `["pairwise","public"]`,
		"token_endpoint_auth_methods_supported": `["client_secret_basic","client_secret_post","none"]`,
	}
	for k, v := range want {
		got, _ := json.Marshal(d[k])
		if s, ok := d[k].(string); ok {
			got = []byte(s)
		}
		if string(got) != v {
			t.Errorf("discovery %s = %s, want %s", k, got, v)
		}
	}
	if got, _ := json.Marshal(d["acr_values_supported"]); string(got) != `["urn:id4me:acr:pwd","urn:id4me:acr:mfa","phr"]` {
		t.Errorf("acr_values_supported = %s", got)
	}
	for _, k := range []string{"authorization_endpoint", "token_endpoint", "userinfo_endpoint", "claims_supported", "scopes_supported"} {
		if d[k] == nil {
			t.Errorf("discovery lacks %s", k)
		}
	}
	// Only what is issued: the authority issues no azp.
	for _, c := range d["claims_supported"].([]any) {
		if c == "azp" {
			t.Errorf("claims_supported lists %s, which the authority does not issue", c)
		}
	}
	for _, c := range []string{"sub", "auth_time", "nonce", "amr", "acr", "id4me.identifier", "email"} {
		if !slices.Contains(d["claims_supported"].([]any), any(c)) {
			t.Errorf("claims_supported lacks %s", c)
		}
	}
	for _, k := range []string{"op_policy_uri", "op_tos_uri", "service_documentation"} {
		if d[k] != nil {
			t.Errorf("discovery has %s = %v without its flag", k, d[k])
		}
	}
	keys := get("/jwks.json")["keys"].([]any)
	algs := map[string]bool{}
	for _, k := range keys {
		m := k.(map[string]any)
		algs[m["alg"].(string)] = true
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
			if m[private] != nil {
				t.Fatalf("JWKS publishes private member %s", private)
			}
		}
		if m["kid"] == "" || m["use"] != "sig" {
			t.Fatalf("JWK %v lacks kid or use", m)
		}
	}
	if !algs["RS256"] || !algs["ES256"] {
		t.Fatalf("JWKS algorithms %v, want RS256 and ES256", algs)
	}

	// The operator's documents, when configured.
	docs := map[string]string{
		"op_policy_uri": "https://id.example/privacy", "op_tos_uri": "https://id.example/terms",
		"service_documentation": "https://id.example/developers",
	}
	e = newAuthEnv(t, envOptions{configureAuthority: func(c *authority.Config) {
		c.OPPolicyURI, c.OPTOSURI, c.ServiceDocumentation = docs["op_policy_uri"], docs["op_tos_uri"], docs["service_documentation"]
	}})
	d = get("/.well-known/openid-configuration")
	for k, v := range docs {
		if d[k] != v {
			t.Errorf("discovery %s = %v, want %s", k, d[k], v)
		}
	}
}
