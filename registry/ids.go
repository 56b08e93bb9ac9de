package registry

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"strings"
)

// Prefixes of the identifiers the registry assigns; they tell an operator what an opaque
// value is.
const (
	AgentIDPrefix     = "ag_"
	ChallengeIDPrefix = "ch_"
	IdentityIDPrefix  = "id_"
	AgentTokenPrefix  = "tk_"
	OperatorPrefix    = "op_"
)

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns prefix followed by 128 random bits.
func newID(prefix string) string {
	var b [16]byte
	rand.Read(b[:])
	return prefix + idEncoding.EncodeToString(b[:])
}

// newSecret returns 256 random bits, base64url.
func newSecret() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// hashSecret is how credential secrets are kept. The secrets are 256 random bits, so a fast
// hash is enough: there is nothing to guess.
func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// bearerValue joins a credential ID and its secret into the value a client sends.
func bearerValue(id, secret string) string { return id + "." + secret }

// splitBearer splits a bearer value into credential ID and secret.
func splitBearer(v string) (id, secret string, ok bool) {
	id, secret, ok = strings.Cut(v, ".")
	if !ok || id == "" || secret == "" {
		return "", "", false
	}
	return id, secret, true
}

// secretMatches compares a presented secret with a stored hash in constant time.
func secretMatches(secret string, hash []byte) bool {
	return subtle.ConstantTimeCompare(hashSecret(secret), hash) == 1
}
