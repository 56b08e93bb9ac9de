// Package acme holds the RFC 8555 pieces of the registry's DNS challenge: agents' account keys
// and their RFC 7638 thumbprints, challenge tokens, key authorizations (§8.1) and the dns-01
// TXT record an agent publishes (§8.4). Every JOSE operation goes through go-jose v4.
//
// The record is exactly what lego's dns01.GetChallengeInfo computes, so an agent can publish
// it with any lego DNS provider's Present(domain, token, keyAuth).
package acme

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/json"
)

// MinRSABits is the smallest RSA modulus accepted for an account key (the CA/Browser Forum
// and Let's Encrypt floor).
const MinRSABits = 2048

// maxAccountKeyJSON bounds the JWK text parsed from an agent. An 8192-bit RSA key is about
// 1.5 KiB of JSON; the rest leaves room for an x5c chain.
const maxAccountKeyJSON = 16 << 10

// TokenBytes is the number of random bytes in a challenge token (RFC 8555 §8.1 asks for at
// least 128 bits of entropy).
const TokenBytes = 32

// ErrInvalidAccountKey matches, with errors.Is, every refusal of ParseAccountKey.
var ErrInvalidAccountKey = errors.New("invalid ACME account key")

// AccountKey is an agent's ACME account key: a public JWK and its thumbprint.
type AccountKey struct {
	JWK jose.JSONWebKey
	// Thumbprint is the RFC 7638 SHA-256 thumbprint of JWK, base64url without padding: the
	// second half of every key authorization for this account.
	Thumbprint string
}

// privateMembers are the JWK members that carry private or symmetric key material (RFC 7518
// §6.2.2, §6.3.2, §6.4; RFC 8037 §2; "priv" of RFC 9964).
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"}

// ParseAccountKey parses an agent's ACME account key: a PUBLIC JWK in JSON. Refuses private
// keys (say so), symmetric keys, RSA < 2048 bits, EC curves other than P-256/P-384/P-521, and
// anything but RSA/EC/Ed25519; returns the key and its thumbprint. Every refusal wraps
// ErrInvalidAccountKey.
func ParseAccountKey(jwkJSON string) (AccountKey, error) {
	if strings.TrimSpace(jwkJSON) == "" {
		return AccountKey{}, fmt.Errorf("%w: empty", ErrInvalidAccountKey)
	}
	if len(jwkJSON) > maxAccountKeyJSON {
		return AccountKey{}, fmt.Errorf("%w: %d bytes of JSON; the limit is %d",
			ErrInvalidAccountKey, len(jwkJSON), maxAccountKeyJSON)
	}
	// Look at the members before go-jose does, with its JSON decoder: its UnmarshalJSON
	// accepts private keys, and a caller who sent one must be told to send the public half
	// (and to consider the private key exposed) rather than have it silently reduced.
	var members map[string]json.RawMessage
	if err := json.Unmarshal([]byte(jwkJSON), &members); err != nil {
		return AccountKey{}, fmt.Errorf("%w: not a JSON object: %w", ErrInvalidAccountKey, err)
	}
	var kty string
	if raw, ok := members["kty"]; ok {
		if err := json.Unmarshal(raw, &kty); err != nil {
			return AccountKey{}, fmt.Errorf("%w: \"kty\" is not a string", ErrInvalidAccountKey)
		}
	}
	switch kty {
	case "":
		return AccountKey{}, fmt.Errorf("%w: no \"kty\" member", ErrInvalidAccountKey)
	case "oct":
		return AccountKey{}, fmt.Errorf("%w: symmetric (\"oct\") keys cannot be account keys; "+
			"send a public RSA, EC or Ed25519 key", ErrInvalidAccountKey)
	case "RSA", "EC", "OKP":
	default:
		return AccountKey{}, fmt.Errorf("%w: key type %q is not supported; "+
			"send a public RSA, EC or Ed25519 key", ErrInvalidAccountKey, kty)
	}
	for _, m := range privateMembers {
		for name := range members {
			// EqualFold: stricter than the case-sensitive decoder, in case that ever changes.
			if strings.EqualFold(name, m) {
				return AccountKey{}, errPrivateKey(name)
			}
		}
	}
	// Name an unsupported curve here; go-jose would only say "unsupported key type".
	var crv string
	if raw, ok := members["crv"]; ok {
		_ = json.Unmarshal(raw, &crv) // a non-string crv stays "" and is refused below
	}
	switch {
	case kty == "EC" && crv != "P-256" && crv != "P-384" && crv != "P-521":
		return AccountKey{}, fmt.Errorf("%w: EC curve %q is not supported; use P-256, P-384 or P-521",
			ErrInvalidAccountKey, crv)
	case kty == "OKP" && crv != "Ed25519":
		return AccountKey{}, fmt.Errorf("%w: OKP curve %q is not supported; use Ed25519",
			ErrInvalidAccountKey, crv)
	}

	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON([]byte(jwkJSON)); err != nil {
		return AccountKey{}, fmt.Errorf("%w: %w", ErrInvalidAccountKey, err)
	}
	if !jwk.Valid() {
		return AccountKey{}, fmt.Errorf("%w: the JWK lacks required members", ErrInvalidAccountKey)
	}
	switch key := jwk.Key.(type) {
	case *rsa.PublicKey:
		if bits := key.N.BitLen(); bits < MinRSABits {
			return AccountKey{}, fmt.Errorf("%w: RSA key of %d bits; the minimum is %d",
				ErrInvalidAccountKey, bits, MinRSABits)
		}
	case *ecdsa.PublicKey:
		// go-jose knows only these curves today; the check keeps the policy here should it
		// learn more.
		switch key.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return AccountKey{}, fmt.Errorf("%w: EC curve %s is not supported; use P-256, P-384 or P-521",
				ErrInvalidAccountKey, key.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
		return AccountKey{}, errPrivateKey("")
	default:
		return AccountKey{}, fmt.Errorf("%w: key type %T is not supported; "+
			"send a public RSA, EC or Ed25519 key", ErrInvalidAccountKey, jwk.Key)
	}

	thumbprint, err := Thumbprint(jwk)
	if err != nil {
		return AccountKey{}, fmt.Errorf("%w: %w", ErrInvalidAccountKey, err)
	}
	return AccountKey{JWK: jwk, Thumbprint: thumbprint}, nil
}

func errPrivateKey(member string) error {
	has := ""
	if member != "" {
		has = fmt.Sprintf(" (it has the %q member)", member)
	}
	return fmt.Errorf("%w: the JWK is a private key%s; send only the public key, "+
		"and treat this private key as exposed", ErrInvalidAccountKey, has)
}

// Thumbprint returns the RFC 7638 SHA-256 thumbprint of jwk, base64url without padding. For
// a private key it is the thumbprint of the public half.
func Thumbprint(jwk jose.JSONWebKey) (string, error) {
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("acme: JWK thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// NewToken returns a fresh challenge token: TokenBytes random bytes from crypto/rand,
// base64url without padding.
func NewToken() (string, error) {
	b := make([]byte, TokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("acme: challenge token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// KeyAuthorization returns the key authorization of RFC 8555 §8.1: token "." thumbprint.
func KeyAuthorization(token, thumbprint string) string {
	return token + "." + thumbprint
}

// RecordName returns the fully qualified owner name of the dns-01 TXT record for the DNS name
// dnsName (RFC 8555 §8.4): "_acme-challenge." + dnsName + ".", what lego builds from the domain
// given to Present. dnsName is expected without a trailing dot; one is tolerated.
func RecordName(dnsName string) string {
	return "_acme-challenge." + strings.TrimSuffix(dnsName, ".") + "."
}

// RecordValue returns the dns-01 TXT record value for a key authorization (RFC 8555 §8.4):
// base64url(SHA-256(keyAuthorization)), without padding.
func RecordValue(keyAuthorization string) string {
	sum := sha256.Sum256([]byte(keyAuthorization))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
