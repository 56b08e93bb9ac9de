package oidctest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// AgentCheck is what a relying party checks of an agent's answer at a claims endpoint.
type AgentCheck struct {
	// ClientID is the relying party: the answer's aud.
	ClientID string
	// Accept is the Accept header of the request: empty asks for the default, a signed JWT.
	Accept string
	// Now is the clock exp is checked against (nil: time.Now).
	Now func() time.Time
}

// AgentAnswer is an agent's answer as a relying party received it.
type AgentAnswer struct {
	// Claims are the answer's claims, verified when Signed.
	Claims map[string]any
	// ContentType is the answer's media type.
	ContentType string
	// Signed says the answer was a JWT verified with the agent's keys.
	Signed bool
	// Raw is the answer's body.
	Raw string
}

// FetchAgentClaims asks the claims endpoint with accessToken and checks its answer for the
// holder the authority knows as sub: a JWT is verified as a relying party does (the kid's
// key in the JWKS of the answer's issuer, found through its discovery; RS256 or ES256;
// the issuer on the endpoint's host; aud the client; exp not past); both forms must carry
// sub, id4me.identifier and id4me.identity.
func FetchAgentClaims(client *http.Client, endpoint, accessToken, sub string, c AgentCheck) (AgentAnswer, error) {
	req, err := http.NewRequest(http.MethodGet, endpoint, nil)
	if err != nil {
		return AgentAnswer{}, err
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	if c.Accept != "" {
		req.Header.Set("Accept", c.Accept)
	}
	resp, err := client.Do(req)
	if err != nil {
		return AgentAnswer{}, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return AgentAnswer{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return AgentAnswer{}, &HTTPError{Status: resp.StatusCode, Body: string(body), WWWAuthenticate: resp.Header.Get("WWW-Authenticate")}
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	a := AgentAnswer{ContentType: ct, Raw: string(body)}
	switch ct {
	case "application/jwt":
		a.Claims, err = verifyAgentJWT(client, endpoint, string(body), c)
		a.Signed = true
	case "application/json":
		err = json.Unmarshal(body, &a.Claims)
	default:
		err = fmt.Errorf("content type %q", ct)
	}
	if err != nil {
		return a, fmt.Errorf("claims source %s: %w", endpoint, err)
	}
	if a.Claims["sub"] != sub || a.Claims["id4me.identifier"] == nil || a.Claims["id4me.identity"] == nil {
		return a, fmt.Errorf("claims source %s answers for sub %v (identifier %v, identity %v), not %v",
			endpoint, a.Claims["sub"], a.Claims["id4me.identifier"], a.Claims["id4me.identity"], sub)
	}
	return a, nil
}

// verifyAgentJWT verifies an agent's signed answer got from endpoint.
func verifyAgentJWT(client *http.Client, endpoint, raw string, c AgentCheck) (map[string]any, error) {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		return nil, err
	}
	var unverified struct {
		Issuer string `json:"iss"`
	}
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return nil, err
	}
	// The endpoint came from the authority; the issuer it names is trusted only on its host.
	iu, err := url.Parse(unverified.Issuer)
	eu, _ := url.Parse(endpoint)
	if err != nil || iu.Scheme != "https" || iu.Host != eu.Host {
		return nil, fmt.Errorf("the answer's issuer %q is not on the endpoint's host %s", unverified.Issuer, eu.Host)
	}
	var disco struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := getJSON(client, strings.TrimSuffix(unverified.Issuer, "/")+"/.well-known/openid-configuration", &disco); err != nil {
		return nil, fmt.Errorf("the agent's discovery: %w", err)
	}
	if disco.Issuer != unverified.Issuer {
		return nil, fmt.Errorf("the agent's discovery names issuer %q, the answer %q", disco.Issuer, unverified.Issuer)
	}
	var set jose.JSONWebKeySet
	if err := getJSON(client, disco.JWKSURI, &set); err != nil {
		return nil, fmt.Errorf("the agent's JWKS: %w", err)
	}
	kid := tok.Headers[0].KeyID
	keys := set.Key(kid)
	if len(keys) != 1 {
		return nil, fmt.Errorf("the agent's JWKS has %d keys of kid %q", len(keys), kid)
	}
	var std jwt.Claims
	var all map[string]any
	if err := tok.Claims(keys[0].Key, &std, &all); err != nil {
		return nil, err
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	if std.Expiry == nil || std.IssuedAt == nil {
		return nil, errors.New("the answer lacks exp or iat")
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: unverified.Issuer, AnyAudience: jwt.Audience{c.ClientID}, Time: now()}, time.Minute); err != nil {
		return nil, err
	}
	return all, nil
}

// getJSON fetches u with client and decodes its JSON answer into dst.
func getJSON(client *http.Client, u string, dst any) error {
	resp, err := client.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(dst)
}

// distributedClaims follows userinfo's _claim_sources with client, checking each answer
// with c, and returns the claims named in _claim_names.
func distributedClaims(client *http.Client, userinfo map[string]any, c AgentCheck) (map[string]any, error) {
	names, _ := userinfo["_claim_names"].(map[string]any)
	sources, _ := userinfo["_claim_sources"].(map[string]any)
	sub, _ := userinfo["sub"].(string)
	out := make(map[string]any)
	fetched := make(map[string]map[string]any)
	for claim, src := range names {
		s, _ := src.(string)
		if _, ok := fetched[s]; !ok {
			cs, _ := sources[s].(map[string]any)
			ep, _ := cs["endpoint"].(string)
			at, _ := cs["access_token"].(string)
			a, err := FetchAgentClaims(client, ep, at, sub, c)
			if err != nil {
				return nil, err
			}
			fetched[s] = a.Claims
		}
		if v, ok := fetched[s][claim]; ok {
			out[claim] = v
		}
	}
	return out, nil
}
