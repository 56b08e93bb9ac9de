package authority

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	jose "github.com/go-jose/go-jose/v4"
)

// The JWE algorithms the authority encrypts ID tokens and userinfo responses with (OpenID
// Connect Core §10.2), to a key of the client's: key management RSA-OAEP-256 and ECDH-ES;
// content encryption A128GCM and A256GCM, and A128CBC-HS256, the "enc" that OpenID Connect
// Dynamic Client Registration §2 makes the default when a client registers only an "alg",
// and that relying-party libraries rely on.
var (
	encryptionAlgs = []jose.KeyAlgorithm{jose.RSA_OAEP_256, jose.ECDH_ES}
	encryptionEncs = []jose.ContentEncryption{jose.A128CBC_HS256, jose.A128GCM, jose.A256GCM}
)

// defaultEncryptionEnc is the "enc" of a client that registered only an "alg".
const defaultEncryptionEnc = jose.A128CBC_HS256

// maxClientKeys bounds the keys of a client's JWK Set.
const maxClientKeys = 50

// privateJWKMembers are the members of a JWK that hold private or symmetric key material
// (RFC 7518 §6): a client's set must have none.
var privateJWKMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"}

// encryptionDiscovery is what discovery says of encryption (OpenID Connect Discovery §3).
func encryptionDiscovery() map[string]any {
	return map[string]any{
		"id_token_encryption_alg_values_supported": encryptionAlgs,
		"id_token_encryption_enc_values_supported": encryptionEncs,
		"userinfo_encryption_alg_values_supported": encryptionAlgs,
		"userinfo_encryption_enc_values_supported": encryptionEncs,
	}
}

// clientEncryption validates what a client registered for encrypted ID tokens and userinfo
// responses and records it in md: the algorithms (an "enc" without its "alg" is refused; an
// "alg" alone gets the default "enc"), and its public keys, inline (jwks) or by reference
// (jwks_uri, fetched now), which must hold a key each registered algorithm can encrypt to.
// What cannot be honoured is an invalid_client_metadata *oauthError.
func (a *Authority) clientEncryption(ctx context.Context, req registrationRequest, md *ClientMetadata) error {
	bad := func(format string, args ...any) error {
		return errorf("invalid_client_metadata", fmt.Sprintf(format, args...))
	}
	var algs []jose.KeyAlgorithm
	for _, r := range []struct {
		name           string
		alg, enc       string
		dstAlg, dstEnc *string
	}{
		{"id_token", req.IDTokenEncryptedResponseAlg, req.IDTokenEncryptedResponseEnc, &md.IDTokenEncryptedResponseAlg, &md.IDTokenEncryptedResponseEnc},
		{"userinfo", req.UserinfoEncryptedResponseAlg, req.UserinfoEncryptedResponseEnc, &md.UserinfoEncryptedResponseAlg, &md.UserinfoEncryptedResponseEnc},
	} {
		switch {
		case r.alg == "" && r.enc != "":
			return bad("%s_encrypted_response_enc needs %s_encrypted_response_alg", r.name, r.name)
		case r.alg == "":
			continue
		case !slices.Contains(encryptionAlgs, jose.KeyAlgorithm(r.alg)):
			return bad("%s_encrypted_response_alg must be one of %v, not %q", r.name, encryptionAlgs, r.alg)
		}
		enc := cmp.Or(r.enc, string(defaultEncryptionEnc))
		if !slices.Contains(encryptionEncs, jose.ContentEncryption(enc)) {
			return bad("%s_encrypted_response_enc must be one of %v, not %q", r.name, encryptionEncs, enc)
		}
		*r.dstAlg, *r.dstEnc = r.alg, enc
		algs = append(algs, jose.KeyAlgorithm(r.alg))
	}

	inline := len(req.JWKS) > 0 && !bytes.Equal(req.JWKS, []byte("null"))
	var keys []jose.JSONWebKey
	switch {
	case inline && req.JWKSURI != "":
		return bad("jwks and jwks_uri exclude each other: register one of them")
	case inline:
		var err error
		if keys, err = parseClientJWKS(req.JWKS); err != nil {
			return bad("jwks: %v", err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, req.JWKS); err != nil {
			return bad("jwks: %v", err)
		}
		md.JWKS = compact.Bytes()
	case req.JWKSURI != "":
		u, err := url.Parse(req.JWKSURI)
		switch {
		case err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Fragment != "" || len(req.JWKSURI) > 2000:
			return bad("jwks_uri must be an https URL without user information or fragment")
		case !a.cfg.AllowPrivateJWKSURI:
			if err := checkJWKSURIHost(u.Hostname()); err != nil {
				return bad("jwks_uri: %v", err)
			}
		}
		md.JWKSURI = req.JWKSURI
	case len(algs) > 0:
		return bad("encrypted responses need the client's public keys: register jwks or jwks_uri")
	}
	if len(algs) == 0 {
		return nil
	}
	if md.JWKSURI != "" {
		var err error
		keys, err = a.jwksURIs.keys(ctx, md.JWKSURI, func(keys []jose.JSONWebKey) bool {
			return !slices.ContainsFunc(algs, func(alg jose.KeyAlgorithm) bool { return encryptionKey(keys, alg) == nil })
		})
		if err != nil {
			return bad("%v", err)
		}
	}
	for _, alg := range algs {
		if encryptionKey(keys, alg) == nil {
			return bad("no key of the client's JWK Set can be used with %s: %s", alg, keyNeeds(alg))
		}
	}
	return nil
}

// parseClientJWKS parses a client's JWK Set. A key with private or symmetric material
// refuses the set: the client published what it must keep secret. A key of a type the
// authority does not know is left out.
func parseClientJWKS(b []byte) ([]jose.JSONWebKey, error) {
	var set struct {
		Keys []map[string]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil || set.Keys == nil {
		return nil, errors.New(`not a JWK Set (a JSON object with a "keys" array)`)
	}
	if len(set.Keys) > maxClientKeys {
		return nil, fmt.Errorf("more than %d keys", maxClientKeys)
	}
	var keys []jose.JSONWebKey
	for i, raw := range set.Keys {
		for _, m := range privateJWKMembers {
			if _, ok := raw[m]; ok {
				return nil, fmt.Errorf("key %d holds private or symmetric key material (%q): publish only public keys", i, m)
			}
		}
		b, _ := json.Marshal(raw)
		var k jose.JSONWebKey
		// Safe: the key has no private member, so go-jose parses a public key or nothing.
		if err := k.UnmarshalJSON(b); err != nil || !k.Valid() {
			continue
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// encryptionKey returns the key of keys to encrypt to with alg, or nil: a key of the type alg
// needs, meant for encryption ("use" absent or "enc") and for alg ("alg" absent or alg). A
// key that says "use": "enc" comes before one that says nothing.
func encryptionKey(keys []jose.JSONWebKey, alg jose.KeyAlgorithm) *jose.JSONWebKey {
	var fallback *jose.JSONWebKey
	for i := range keys {
		k := &keys[i]
		if (k.Use != "" && k.Use != "enc") || (k.Algorithm != "" && k.Algorithm != string(alg)) || !fitsAlg(k.Key, alg) {
			continue
		}
		if k.Use == "enc" {
			return k
		}
		if fallback == nil {
			fallback = k
		}
	}
	return fallback
}

func fitsAlg(key any, alg jose.KeyAlgorithm) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return alg == jose.RSA_OAEP_256 && k.N.BitLen() >= MinRSABits
	case *ecdsa.PublicKey:
		return alg == jose.ECDH_ES && (k.Curve == elliptic.P256() || k.Curve == elliptic.P384() || k.Curve == elliptic.P521())
	}
	return false
}

func keyNeeds(alg jose.KeyAlgorithm) string {
	kty := fmt.Sprintf(`"kty": "RSA" of at least %d bits`, MinRSABits)
	if alg == jose.ECDH_ES {
		kty = `"kty": "EC" on P-256, P-384 or P-521`
	}
	return fmt.Sprintf(`it needs a public key with %s, "use" absent or "enc", and "alg" absent or %q`, kty, alg)
}

// encryptionError is a response that cannot be encrypted for its client: its keys could not
// be fetched, or no longer hold a key for its algorithm. The client's trouble rather than
// the authority's, and said as much.
type encryptionError struct {
	err error
}

func (e *encryptionError) Error() string {
	return "the response cannot be encrypted for this client: " + e.err.Error()
}

func (e *encryptionError) Unwrap() error { return e.err }

// idTokenKey returns the client's key to encrypt its ID tokens to, or nil when it registered
// none: the token endpoint gets it before it uses the code up, so that a jwks_uri that
// cannot be fetched leaves the code good for another try.
func (a *Authority) idTokenKey(ctx context.Context, c Client) (*jose.JSONWebKey, error) {
	if c.Metadata.IDTokenEncryptedResponseAlg == "" {
		return nil, nil
	}
	key, err := a.clientEncryptionKey(ctx, c, jose.KeyAlgorithm(c.Metadata.IDTokenEncryptedResponseAlg))
	if err != nil {
		return nil, &encryptionError{err: err}
	}
	return key, nil
}

// encryptIDToken encrypts a signed ID token to key, the client's (idTokenKey): a nested JWT
// (OpenID Connect Core §16.14, "cty": "JWT"). With a nil key it returns the ID token as it
// is.
func (a *Authority) encryptIDToken(c Client, key *jose.JSONWebKey, idToken string) (string, error) {
	if key == nil {
		return idToken, nil
	}
	md := c.Metadata
	return encryptTo(c, key, md.IDTokenEncryptedResponseAlg, md.IDTokenEncryptedResponseEnc, []byte(idToken), "JWT")
}

// encryptFor encrypts payload to the client's key for alg, as a compact JWE with "kid" when
// the key has one, and "cty" when cty is set.
func (a *Authority) encryptFor(ctx context.Context, c Client, alg, enc string, payload []byte, cty string) (string, error) {
	key, err := a.clientEncryptionKey(ctx, c, jose.KeyAlgorithm(alg))
	if err != nil {
		return "", &encryptionError{err: err}
	}
	return encryptTo(c, key, alg, enc, payload, cty)
}

// encryptTo encrypts payload to key, one of client c's, as encryptFor does.
func encryptTo(c Client, key *jose.JSONWebKey, alg, enc string, payload []byte, cty string) (string, error) {
	opts := &jose.EncrypterOptions{}
	if cty != "" {
		opts = opts.WithContentType(jose.ContentType(cty))
	}
	e, err := jose.NewEncrypter(jose.ContentEncryption(enc),
		jose.Recipient{Algorithm: jose.KeyAlgorithm(alg), Key: key.Key, KeyID: key.KeyID}, opts)
	if err != nil {
		return "", fmt.Errorf("authority: %s/%s encrypter for client %s: %w", alg, enc, c.ID, err)
	}
	jwe, err := e.Encrypt(payload)
	if err != nil {
		return "", fmt.Errorf("authority: encrypting for client %s: %w", c.ID, err)
	}
	return jwe.CompactSerialize()
}

// clientEncryptionKey returns the client's key for alg, from its jwks or its jwks_uri.
func (a *Authority) clientEncryptionKey(ctx context.Context, c Client, alg jose.KeyAlgorithm) (*jose.JSONWebKey, error) {
	var keys []jose.JSONWebKey
	var err error
	if c.Metadata.JWKSURI != "" {
		keys, err = a.jwksURIs.keys(ctx, c.Metadata.JWKSURI, func(keys []jose.JSONWebKey) bool { return encryptionKey(keys, alg) != nil })
	} else {
		keys, err = parseClientJWKS(c.Metadata.JWKS)
	}
	if err != nil {
		return nil, err
	}
	key := encryptionKey(keys, alg)
	if key == nil {
		return nil, fmt.Errorf("no key of its JWK Set can be used with %s", alg)
	}
	return key, nil
}

// responseError answers a failure to produce a token or userinfo response: one that cannot
// be encrypted for its client says why; anything else is internal.
func (a *Authority) responseError(w http.ResponseWriter, r *http.Request, err error) {
	var ee *encryptionError
	if !errors.As(err, &ee) {
		a.internalError(w, r, err)
		return
	}
	cause := err
	if fe, ok := errors.AsType[*fetchError](err); ok && fe.err != nil {
		cause = fe.err
	}
	a.log.WarnContext(r.Context(), "authority: response not encrypted", "path", r.URL.Path, "err", err, "cause", cause)
	writeOAuthError(w, http.StatusInternalServerError, errorf("server_error", ee.Error()))
}
