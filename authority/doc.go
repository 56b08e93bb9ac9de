// Package authority is the registry's embedded ID4me Identity Authority: an OpenID Connect
// provider that keeps and verifies identifier holders' credentials and answers relying
// parties with distributed claims pointing at the sponsoring agent's claims endpoint.
//
// It offers discovery, a JWKS, open dynamic client registration (RFC 7591, RFC 7592 read),
// the authorization code flow with PKCE (S256) and the "claims" request parameter,
// server-rendered login, consent and credential pages, a token endpoint and a userinfo
// endpoint (JSON or a signed JWT). Every JOSE operation goes through go-jose v4 with explicit
// algorithm lists.
//
// The authority reads the identifier → agent mapping through the Mapping interface, which
// the registry's Service satisfies, and keeps its own state in a Store.
package authority
