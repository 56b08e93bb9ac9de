package authority

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/id4me/id4me-registry/registry"
)

// claimSource is the one source of distributed claims: the sponsoring agent's claims
// endpoint and the access token it accepts (OpenID Connect Core §5.6.2).
const claimSource = "src1"

// userinfo is the userinfo response: the subject and distributed claims.
type userinfo struct {
	Subject      string                   `json:"sub"`
	Issuer       string                   `json:"iss"`
	Audience     string                   `json:"aud"`
	ClaimNames   map[string]string        `json:"_claim_names,omitempty"`
	ClaimSources map[string]claimEndpoint `json:"_claim_sources,omitempty"`
	// IssuedAt is set only in a signed response.
	IssuedAt int64 `json:"iat,omitempty"`
}

type claimEndpoint struct {
	Endpoint    string `json:"endpoint"`
	AccessToken string `json:"access_token"`
}

// serveUserinfo is the userinfo endpoint: the consented claims, distributed to the agent
// that sponsors the identifier now (a transfer moves them), as JSON, or as a JWT (signed,
// encrypted, or both) as the client registered (userinfoJWT).
func (a *Authority) serveUserinfo(w http.ResponseWriter, r *http.Request) {
	tok, ok := bearerToken(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="userinfo"`)
		writeOAuthError(w, http.StatusUnauthorized, errorf("invalid_request", "a Bearer access token is required"))
		return
	}
	ctx := r.Context()
	now := a.now()
	at, err := a.store.GetAccessToken(ctx, hashToken(tok))
	if err != nil && !errors.Is(err, ErrNotFound) {
		a.internalError(w, r, err)
		return
	}
	if err != nil || !at.RevokeTime.IsZero() || !now.Before(at.ExpireTime) {
		a.invalidToken(w, "the access token is not valid, expired or revoked")
		return
	}
	res, err := a.resolver.Resolve(ctx, at.Identifier)
	switch {
	case registry.KindOf(err) == registry.KindNotFound, err == nil && res.IdentityID != at.IdentityID:
		a.invalidToken(w, "the identifier no longer resolves to the identity this token was issued for")
		return
	case err != nil:
		a.internalError(w, r, err)
		return
	}
	out := userinfo{Subject: at.Subject, Issuer: a.issuer, Audience: at.ClientID}
	var agentJWT string
	if len(at.Claims) > 0 {
		if agentJWT, err = a.agentTokenFor(at, res.AgentIssuer); err != nil {
			a.internalError(w, r, err)
			return
		}
	}
	w.Header()["Cache-Control"] = noStore
	c, err := a.client(ctx, at.ClientID)
	if errors.Is(err, ErrNotFound) {
		a.invalidToken(w, "the client this token was issued to is no longer registered")
		return
	}
	if err != nil {
		a.internalError(w, r, err)
		return
	}
	md := c.Metadata
	plain := md.UserinfoSignedResponseAlg == "" && md.UserinfoEncryptedResponseAlg == ""
	// The JSON answer follows from the access token, the agent token and the claims endpoint,
	// and a signed one (not encrypted) from those and the key that signs: made once with the
	// agent token, each is kept beside it, its iat the time it was first signed. An
	// encrypted answer is made anew each time (a JWE is randomised).
	var form string
	switch {
	case agentJWT == "" || md.UserinfoEncryptedResponseAlg != "":
	case plain:
		form = answerJSON
	default:
		key, err := a.keys.current(md.UserinfoSignedResponseAlg)
		if err != nil {
			a.responseError(w, r, err)
			return
		}
		form = key.ID
	}
	if form != "" {
		if b, ok := a.agentTokens.answer(at.TokenHash, agentJWT, res.ClaimsEndpoint, form); ok {
			writeUserinfo(w, form, b)
			return
		}
	}
	if agentJWT != "" {
		out.ClaimNames = make(map[string]string, len(at.Claims))
		for _, c := range at.Claims {
			out.ClaimNames[c] = claimSource
		}
		out.ClaimSources = map[string]claimEndpoint{claimSource: {Endpoint: res.ClaimsEndpoint, AccessToken: agentJWT}}
	}
	var b []byte
	if plain {
		b, err = json.Marshal(out)
		if err != nil {
			a.internalError(w, r, err)
			return
		}
	} else {
		jwt, err := a.userinfoJWT(ctx, c, out, now)
		if err != nil {
			a.responseError(w, r, err)
			return
		}
		b = []byte(jwt)
	}
	if form != "" {
		a.agentTokens.keepAnswer(at.TokenHash, agentJWT, res.ClaimsEndpoint, form, b)
	}
	if plain {
		form = answerJSON
	}
	writeUserinfo(w, form, b)
}

// answerJSON is the form of a JSON userinfo answer in the agent token cache; a signed
// answer's form is the id of the key that signed it.
const answerJSON = "json"

// writeUserinfo writes a userinfo answer: JSON when form is answerJSON, else a JWT.
func writeUserinfo(w http.ResponseWriter, form string, b []byte) {
	if form == answerJSON {
		writeJSONBytes(w, http.StatusOK, b)
		return
	}
	w.Header().Set("Content-Type", "application/jwt")
	w.Write(b)
}

// userinfoJWT is the userinfo response as a JWT (OpenID Connect Core §5.3.2): signed when
// the client registered userinfo_signed_response_alg, and then encrypted when it registered
// userinfo_encrypted_response_alg too (a nested JWT, "cty": "JWT"); encrypted only, the JWE
// holds the claims as JSON.
func (a *Authority) userinfoJWT(ctx context.Context, c Client, out userinfo, now time.Time) (string, error) {
	md := c.Metadata
	var payload []byte
	cty := ""
	if md.UserinfoSignedResponseAlg != "" {
		out.IssuedAt = now.Unix()
		jwt, err := a.signJSON(md.UserinfoSignedResponseAlg, out, "JWT")
		if err != nil || md.UserinfoEncryptedResponseAlg == "" {
			return jwt, err
		}
		payload, cty = []byte(jwt), "JWT"
	} else {
		var err error
		if payload, err = json.Marshal(out); err != nil {
			return "", err
		}
	}
	return a.encryptFor(ctx, c, md.UserinfoEncryptedResponseAlg, md.UserinfoEncryptedResponseEnc, payload, cty)
}

func (a *Authority) invalidToken(w http.ResponseWriter, description string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="userinfo", error="invalid_token"`)
	writeOAuthError(w, http.StatusUnauthorized, errorf("invalid_token", description))
}
