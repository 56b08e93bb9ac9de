// Package authority is the registry's embedded ID4me Identity Authority: an OpenID Connect
// provider that keeps and verifies identifier holders' credentials and answers relying
// parties with distributed claims pointing at the sponsoring agent's claims endpoint.
//
// It offers discovery, a JWKS, dynamic client registration (RFC 7591: open, or with an
// operator's initial access token) and client management (RFC 7592: read, update, delete;
// every read and update issues a new registration access token, as only its hash is kept),
// the authorization code flow with the "claims" request parameter, server-rendered login,
// consent and credential pages, a token endpoint and a userinfo endpoint (JSON or a signed
// JWT). Every JOSE operation goes through go-jose v4 with explicit algorithm lists.
//
// PKCE follows RFC 9700 §2.1.1: S256 only; mandatory for public clients
// (token_endpoint_auth_method none, which get no secret) and, with Config.RequirePKCE, for
// every client; optional for confidential clients, as the ID4me RP libraries send none. It
// is downgrade-protected: a code requested with a code_challenge redeems only with its
// verifier, and one requested without refuses a verifier.
//
// The authority reads the identifier → agent mapping through the Resolver interface, which
// registry.Resolver satisfies, and keeps its own state in a Store.
package authority
