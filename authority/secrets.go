package authority

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
)

// randomToken returns 256 random bits, base64url: secrets, codes, tokens.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// randomID returns 128 random bits, base64url: identifiers that need not be secret.
func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashToken is how the store keeps a secret the authority only needs to recognise.
func hashToken(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}
