package oidctest

import (
	"errors"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// JWE algorithms an RP accepts: what it may register with the authority.
var (
	jweAlgs = []jose.KeyAlgorithm{jose.RSA_OAEP_256, jose.ECDH_ES}
	jweEncs = []jose.ContentEncryption{jose.A128CBC_HS256, jose.A128GCM, jose.A256GCM}
)

// isJWE reports whether s is a JWE in compact serialization (five parts, where a JWS has
// three).
func isJWE(s string) bool { return strings.Count(s, ".") == 4 }

// Decrypt decrypts a compact JWE with the RP's DecryptionKey and returns its plaintext and
// header.
func (rp *RP) Decrypt(jwe string) ([]byte, jose.Header, error) {
	if rp.DecryptionKey == nil {
		return nil, jose.Header{}, errors.New("encrypted, and the RP has no decryption key")
	}
	obj, err := jose.ParseEncrypted(jwe, jweAlgs, jweEncs)
	if err != nil {
		return nil, jose.Header{}, err
	}
	plain, err := obj.Decrypt(rp.DecryptionKey)
	if err != nil {
		return nil, jose.Header{}, err
	}
	return plain, obj.Header, nil
}
