package authority

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
)

// signingAlgs are the JWS algorithms the authority signs with, RS256 first: ID4me relying
// parties pick from the RS family.
var signingAlgs = []string{"RS256", "ES256"}

func isSigningAlg(alg string) bool { return slices.Contains(signingAlgs, alg) }

// scopeClaims are the claims each standard scope asks for (OpenID Connect Core §5.4).
var scopeClaims = map[string][]string{
	"profile": {"name", "family_name", "given_name", "middle_name", "nickname", "preferred_username", "profile", "picture", "website", "gender", "birthdate", "zoneinfo", "locale", "updated_at"},
	"email":   {"email", "email_verified"},
	"address": {"address"},
	"phone":   {"phone_number", "phone_number_verified"},
}

// supportedScopes are the scopes the authority knows; others are ignored, as Core §3.1.2.1
// asks.
var supportedScopes = []string{"openid", "profile", "email", "address", "phone"}

// authorityClaims are the claims the authority itself asserts, in its ID tokens and
// userinfo; claims_supported lists them.
var authorityClaims = []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "amr", "acr", "id4me.identifier", "sid"}

// protocolClaims are the claims that never come from the agent, as a distributed claim: the
// authority's, and those of OpenID Connect it does not issue (acr, azp).
var protocolClaims = append(slices.Clone(authorityClaims), "azp")

// discovery builds the OpenID Provider metadata (OpenID Connect Discovery §3).
func (a *Authority) discovery() ([]byte, error) {
	claims := append([]string{}, authorityClaims...)
	for _, s := range supportedScopes {
		claims = append(claims, scopeClaims[s]...)
	}
	m := map[string]any{
		"issuer":                                         a.issuer,
		"authorization_endpoint":                         a.issuer + pathAuthorize,
		"token_endpoint":                                 a.issuer + pathToken,
		"userinfo_endpoint":                              a.issuer + pathUserinfo,
		"jwks_uri":                                       a.issuer + pathJWKS,
		"registration_endpoint":                          a.issuer + pathRegister,
		"scopes_supported":                               supportedScopes,
		"response_types_supported":                       []string{"code"},
		"response_modes_supported":                       []string{"query"},
		"grant_types_supported":                          []string{"authorization_code"},
		"subject_types_supported":                        []SubjectType{SubjectPairwise, SubjectPublic},
		"id_token_signing_alg_values_supported":          signingAlgs,
		"userinfo_signing_alg_values_supported":          signingAlgs,
		"token_endpoint_auth_methods_supported":          tokenAuthMethods,
		"code_challenge_methods_supported":               []string{"S256"},
		"claims_parameter_supported":                     true,
		"request_parameter_supported":                    false,
		"request_uri_parameter_supported":                false,
		"claims_supported":                               claims,
		"claim_types_supported":                          []string{"normal", "distributed"},
		"prompt_values_supported":                        []string{"none", "login", "consent"},
		"authorization_response_iss_parameter_supported": true,
		"ui_locales_supported":                           []string{"en"},
		"acr_values_supported":                           acrValues,
		// Logout and revocation (logout.go, backchannel.go, revoke.go).
		"end_session_endpoint":                       a.issuer + pathLogout,
		"backchannel_logout_supported":               true,
		"backchannel_logout_session_supported":       true,
		"frontchannel_logout_supported":              false,
		"revocation_endpoint":                        a.issuer + pathRevoke,
		"revocation_endpoint_auth_methods_supported": tokenAuthMethods,
	}
	maps.Copy(m, encryptionDiscovery())
	for k, v := range map[string]string{
		"op_policy_uri": a.cfg.OPPolicyURI, "op_tos_uri": a.cfg.OPTOSURI, "service_documentation": a.cfg.ServiceDocumentation,
	} {
		if v != "" {
			m[k] = v
		}
	}
	return json.Marshal(m)
}

func (a *Authority) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=3600")
	writeJSONBytes(w, http.StatusOK, a.disco)
}

func (a *Authority) serveJWKS(w http.ResponseWriter, r *http.Request) {
	// Short enough that a relying party sees a new key during its publish lead.
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSONBytes(w, http.StatusOK, a.keys.JWKS())
}
