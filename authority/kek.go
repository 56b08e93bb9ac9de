package authority

import (
	"bytes"
	"cmp"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// KEKSize is the size of a key-encryption key: AES-256.
const KEKSize = 32

// sealScheme names the one way keys are sealed: AES-256-GCM with a random 96-bit nonce,
// the key's ID in the additional data.
const sealScheme = "A256GCM"

// sealAADPrefix starts the additional data of a sealed key; the key's ID follows, so that a
// sealed key copied into another row does not open.
const sealAADPrefix = "id4me-registry signing key "

// ErrSealed is returned when a stored signing key is sealed with a key-encryption key that
// was not given, or when none was given at all.
var ErrSealed = errors.New("authority: signing key sealed with a key-encryption key not given")

// KeyEncryptionKey seals the authority's private signing keys before they reach the store,
// and opens them again: AES-256-GCM, with the signing key's ID as additional data. Whoever
// holds a copy of the database but not this key holds no key that can sign.
//
// Its file holds 32 random bytes in standard base64 on one line, as GenerateKeyEncryptionKey
// or `openssl rand -base64 32` makes it.
type KeyEncryptionKey struct {
	id   string
	aead cipher.AEAD
}

// GenerateKeyEncryptionKey returns the file of a new random key-encryption key.
func GenerateKeyEncryptionKey() []byte {
	raw := make([]byte, KEKSize)
	rand.Read(raw)
	return []byte(base64.StdEncoding.EncodeToString(raw) + "\n")
}

// ParseKeyEncryptionKey reads a key-encryption key file: 32 bytes in standard base64,
// white space around them ignored.
func ParseKeyEncryptionKey(file []byte) (*KeyEncryptionKey, error) {
	raw, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(file)))
	if err != nil {
		return nil, fmt.Errorf("authority: a key-encryption key is %d bytes in base64: %w", KEKSize, err)
	}
	if len(raw) != KEKSize {
		return nil, fmt.Errorf("authority: a key-encryption key is %d bytes in base64, not %d", KEKSize, len(raw))
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, fmt.Errorf("authority: key-encryption key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("authority: key-encryption key: %w", err)
	}
	// The ID names the key in what it sealed without telling anything of it: an HMAC under
	// the key itself.
	mac := hmac.New(sha256.New, raw)
	mac.Write([]byte("id4me-registry key-encryption key id"))
	return &KeyEncryptionKey{id: base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:9]), aead: aead}, nil
}

// ID names the key-encryption key: sealed keys carry it, and `keys list` shows it.
func (k *KeyEncryptionKey) ID() string { return k.id }

// sealedKey is how a sealed private key is stored: a JSON object that no JWK parser takes
// for a key.
type sealedKey struct {
	// Sealed is the scheme, sealScheme.
	Sealed string `json:"sealed"`
	// KEK is the ID of the key-encryption key.
	KEK        string `json:"kek"`
	Nonce      []byte `json:"nonce"`
	Ciphertext []byte `json:"ciphertext"`
}

// seal seals the private JWK of signing key keyID.
func (k *KeyEncryptionKey) seal(keyID string, jwk []byte) []byte {
	nonce := make([]byte, k.aead.NonceSize())
	rand.Read(nonce)
	b, err := json.Marshal(sealedKey{
		Sealed: sealScheme, KEK: k.id, Nonce: nonce,
		Ciphertext: k.aead.Seal(nil, nonce, jwk, []byte(sealAADPrefix+keyID)),
	})
	if err != nil {
		panic("authority: encoding a sealed key: " + err.Error())
	}
	return b
}

// sealedWith returns the ID of the key-encryption key a stored private key is sealed with,
// or "" when it is stored unsealed.
func sealedWith(stored []byte) (string, error) {
	var s sealedKey
	if json.Unmarshal(stored, &s) != nil || s.Sealed == "" {
		return "", nil
	}
	if s.Sealed != sealScheme || s.KEK == "" {
		return "", fmt.Errorf("sealed as %q with key-encryption key %q; this version knows only %s", s.Sealed, s.KEK, sealScheme)
	}
	return s.KEK, nil
}

// openKey returns the private JWK of signing key keyID as stored: opened with whichever of
// keks sealed it, or as it is when it is stored unsealed.
func openKey(keyID string, stored []byte, keks ...*KeyEncryptionKey) ([]byte, error) {
	kekID, err := sealedWith(stored)
	if err != nil || kekID == "" {
		return stored, err
	}
	var s sealedKey
	if err := json.Unmarshal(stored, &s); err != nil {
		return nil, err
	}
	for _, k := range keks {
		if k == nil || k.id != kekID {
			continue
		}
		if len(s.Nonce) != k.aead.NonceSize() {
			return nil, fmt.Errorf("sealed with key-encryption key %q, with a nonce of %d bytes", kekID, len(s.Nonce))
		}
		jwk, err := k.aead.Open(nil, s.Nonce, s.Ciphertext, []byte(sealAADPrefix+keyID))
		if err != nil {
			return nil, fmt.Errorf("sealed with key-encryption key %q, but does not open with it: altered, or copied from another key's row", kekID)
		}
		return jwk, nil
	}
	given := "none was given"
	var ids []string
	for _, k := range keks {
		if k != nil {
			ids = append(ids, k.id)
		}
	}
	if len(ids) > 0 {
		given = fmt.Sprintf("given: %q", ids)
	}
	return nil, fmt.Errorf("%w: it is sealed with key-encryption key %q; %s", ErrSealed, kekID, given)
}

// RewrapResult is what RewrapSigningKeys did.
type RewrapResult struct {
	// Rewrapped counts the keys sealed anew with the target key-encryption key: sealed with
	// another before, or stored unsealed.
	Rewrapped int
	// Already counts the keys that were sealed with the target key-encryption key already.
	Already int
}

// RewrapSigningKeys seals every signing key of store, expired ones not yet deleted included,
// with to. A key may be stored unsealed, sealed with to, or sealed with one of from. Every key
// is opened before any is written, so that when one opens with none of the keys given nothing
// changes; then each key is replaced on its own, and only if its row is still as it was read
// (ErrConflict otherwise: run it again). Instances still serving can open every key
// throughout if they were given both to and the key-encryption key it replaces.
func RewrapSigningKeys(ctx context.Context, store Store, to *KeyEncryptionKey, from ...*KeyEncryptionKey) (RewrapResult, error) {
	var res RewrapResult
	if to == nil {
		return res, errors.New("authority: rewrapping needs the key-encryption key to seal with")
	}
	// Keys expire after firstKeyNotAfter: this lists every key there is.
	stored, err := store.SigningKeys(ctx, firstKeyNotAfter)
	if err != nil {
		return res, fmt.Errorf("authority: reading the signing keys: %w", err)
	}
	keks := append([]*KeyEncryptionKey{to}, from...)
	type rewrap struct {
		key    SigningKey
		sealed []byte
	}
	var todo []rewrap
	for _, s := range stored {
		kekID, err := sealedWith(s.PrivateJWK)
		if err != nil {
			return res, fmt.Errorf("authority: stored signing key %q (%s): %w", s.ID, s.Alg, err)
		}
		if kekID == to.id {
			if _, err := loadKey(s, to); err != nil {
				return res, err
			}
			res.Already++
			continue
		}
		jwk, err := openKey(s.ID, s.PrivateJWK, keks...)
		if err != nil {
			return res, fmt.Errorf("authority: stored signing key %q (%s): %w", s.ID, s.Alg, err)
		}
		// Sealing only what loads, so that no key is made unreadable by a rewrap.
		if _, err := loadKey(SigningKey{ID: s.ID, Alg: s.Alg, PrivateJWK: jwk}); err != nil {
			return res, err
		}
		todo = append(todo, rewrap{key: s, sealed: to.seal(s.ID, jwk)})
	}
	for _, r := range todo {
		if err := store.ReplaceSigningKeyPrivateJWK(ctx, r.key.ID, r.key.PrivateJWK, r.sealed); err != nil {
			if errors.Is(err, ErrNotFound) {
				// Deleted meanwhile, having expired: nothing left to seal.
				continue
			}
			return res, fmt.Errorf("authority: rewrapping signing key %q after %d others: %w", r.key.ID, res.Rewrapped, err)
		}
		res.Rewrapped++
	}
	return res, nil
}

// warnUnsealed logs, when there are any, the keys not sealed with KEK: stored unsealed, or
// sealed with the previous key-encryption key. RewrapSigningKeys seals them.
func (k *KeySet) warnUnsealed() {
	var unsealed, previous int
	for _, l := range k.state.Load().keys {
		switch id, _ := sealedWith(l.PrivateJWK); id {
		case k.cfg.KEK.id:
		case "":
			unsealed++
		default:
			previous++
		}
	}
	if unsealed+previous > 0 {
		k.cfg.Logger.Warn("signing keys are stored without the key-encryption key's seal; `id4me-registry keys rewrap` seals them",
			"unsealed", unsealed, "sealed_with_previous", previous, "kek", k.cfg.KEK.id)
	}
}

// SealedWith returns the ID of the key-encryption key k's private key is sealed with, or ""
// when it is stored unsealed.
func (k SigningKey) SealedWith() string {
	var s sealedKey
	if json.Unmarshal(k.PrivateJWK, &s) != nil || s.Sealed == "" {
		return ""
	}
	return cmp.Or(s.KEK, "?")
}

// CheckSigningKey opens a stored signing key with whichever of keks sealed it (or takes it as
// it is when it is stored unsealed) and checks that it is a private key of its algorithm.
func CheckSigningKey(s SigningKey, keks ...*KeyEncryptionKey) error {
	_, err := loadKey(s, keks...)
	return err
}
