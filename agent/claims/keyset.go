package claims

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Defaults of KeySetOptions.
const (
	// DefaultRotateEvery is how long a signing key signs before a new one takes over.
	DefaultRotateEvery = 30 * 24 * time.Hour
	// DefaultPublishLead is how long before it signs a new key is in the JWKS, so that
	// relying parties that cache the JWKS (it says max-age=300) know it by then.
	DefaultPublishLead = time.Hour
	// DefaultRetireAfter is how long a key that stopped signing stays published: longer than
	// the answers it signed live (DefaultLifetime), with room for the relying parties' JWKS
	// caches.
	DefaultRetireAfter = 24 * time.Hour
)

// KeySetOptions configures a KeySet.
type KeySetOptions struct {
	// Algorithm is what new keys sign with: jose.RS256 (the default, which every OpenID
	// Connect relying party verifies) or jose.ES256.
	Algorithm jose.SignatureAlgorithm
	// RotateEvery is how long a key signs before the next takes over (default
	// DefaultRotateEvery; negative: until Rotate or Use).
	RotateEvery time.Duration
	// PublishLead is how long before it signs the next key is published (default
	// DefaultPublishLead, at most half of RotateEvery).
	PublishLead time.Duration
	// RetireAfter is how long a replaced key stays in the JWKS (default DefaultRetireAfter).
	// It must outlast the answers the key signed.
	RetireAfter time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// KeySet is an agent's signing keys: the current key signs the claims endpoint's answers;
// the next key is published PublishLead before it takes over, when the current one has
// signed for RotateEvery; keys it replaced stay published until RetireAfter has passed, so
// that answers they signed still verify. Rotate and Use replace the current key at once (a
// key thought compromised). A KeySet opened from a file writes every change back to it (one
// process to a file). It serves its JWKS as an http.Handler and is safe for concurrent use.
type KeySet struct {
	opts KeySetOptions
	path string

	mu sync.Mutex
	// keys are the retired keys, the current key, and the next one when it is published.
	keys []setKey
}

// setKey is one key of a set, as the key file keeps it.
type setKey struct {
	Key     jose.JSONWebKey `json:"key"`
	Created time.Time       `json:"created"`
	// Signs is when the key began signing (zero for the next key, published ahead).
	Signs time.Time `json:"signs,omitzero"`
	// Retired is when the key stopped signing.
	Retired time.Time `json:"retired,omitzero"`
}

func (k setKey) current() bool { return !k.Signs.IsZero() && k.Retired.IsZero() }

// keyFile is the file a KeySet persists to.
type keyFile struct {
	Keys []setKey `json:"keys"`
}

// NewKeySet returns a key set held in memory, with a new key.
func NewKeySet(opts KeySetOptions) (*KeySet, error) {
	ks, err := newKeySet(opts, "")
	if err != nil {
		return nil, err
	}
	if err := ks.Rotate(); err != nil {
		return nil, err
	}
	return ks, nil
}

// OpenKeySet returns the key set kept in the file at path, creating the file (mode 0600)
// with a new key when it does not exist. Changes are written back to the file.
func OpenKeySet(path string, opts KeySetOptions) (*KeySet, error) {
	ks, err := newKeySet(opts, path)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := ks.Rotate(); err != nil {
			return nil, err
		}
		return ks, nil
	}
	if err != nil {
		return nil, fmt.Errorf("claims: key file: %w", err)
	}
	var f keyFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("claims: key file %s: %w", path, err)
	}
	if !slices.ContainsFunc(f.Keys, setKey.current) {
		return nil, fmt.Errorf("claims: key file %s holds no current key", path)
	}
	for i, k := range f.Keys {
		if k.Key.IsPublic() || !k.Key.Valid() || k.Key.KeyID == "" {
			return nil, fmt.Errorf("claims: key file %s: key %d is not a private signing key with a kid", path, i)
		}
		if _, err := signerAlgorithm(k.Key.Key); err != nil {
			return nil, fmt.Errorf("claims: key file %s: key %q: %w", path, k.Key.KeyID, err)
		}
	}
	ks.keys = f.Keys
	return ks, nil
}

func newKeySet(opts KeySetOptions, path string) (*KeySet, error) {
	switch opts.Algorithm {
	case "":
		opts.Algorithm = jose.RS256
	case jose.RS256, jose.ES256:
	default:
		return nil, fmt.Errorf("claims: signing algorithm %q: want RS256 or ES256", opts.Algorithm)
	}
	if opts.RotateEvery == 0 {
		opts.RotateEvery = DefaultRotateEvery
	}
	if opts.PublishLead <= 0 {
		opts.PublishLead = DefaultPublishLead
	}
	opts.PublishLead = min(opts.PublishLead, opts.RotateEvery/2)
	if opts.RetireAfter <= 0 {
		opts.RetireAfter = DefaultRetireAfter
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &KeySet{opts: opts, path: path}, nil
}

// newKey makes a key of the set's algorithm.
func (ks *KeySet) newKey() (jose.JSONWebKey, error) {
	var (
		key crypto.Signer
		err error
	)
	if ks.opts.Algorithm == jose.ES256 {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	} else {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("claims: new key: %w", err)
	}
	return signingJWK(key)
}

// signingJWK is key as a private JWK, named by its RFC 7638 thumbprint.
func signingJWK(key crypto.Signer) (jose.JSONWebKey, error) {
	alg, err := signerAlgorithm(key)
	if err != nil {
		return jose.JSONWebKey{}, err
	}
	jwk := jose.JSONWebKey{Key: key, Algorithm: string(alg), Use: "sig"}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("claims: key thumbprint: %w", err)
	}
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	return jwk, nil
}

// Rotate replaces the signing key at once: by the next key when one is published, by a
// new key of the set's algorithm otherwise.
func (ks *KeySet) Rotate() error {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return ks.promoteLocked(nil)
}

// Use makes key (an *rsa.PrivateKey of at least 2048 bits or an *ecdsa.PrivateKey on P-256)
// the signing key at once, for agents that keep their keys elsewhere. The key it replaces
// stays published for RetireAfter.
func (ks *KeySet) Use(key crypto.Signer) error {
	jwk, err := signingJWK(key)
	if err != nil {
		return err
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return ks.promoteLocked(&jwk)
}

// promoteLocked makes key, or else the next key, or else a new key, the signing key; ks.mu
// is held.
func (ks *KeySet) promoteLocked(key *jose.JSONWebKey) error {
	now := ks.opts.Now()
	if key != nil && slices.ContainsFunc(ks.keys, func(k setKey) bool { return k.current() && k.Key.KeyID == key.KeyID }) {
		return nil
	}
	keys := slices.Clone(ks.keys)
	if key != nil {
		// A retired key signing again is published once.
		keys = slices.DeleteFunc(keys, func(k setKey) bool { return !k.Retired.IsZero() && k.Key.KeyID == key.KeyID })
	}
	next := slices.IndexFunc(keys, func(k setKey) bool { return k.Signs.IsZero() })
	if key != nil && next >= 0 && keys[next].Key.KeyID != key.KeyID {
		// The caller's key takes over; the next key, never used, goes.
		keys = slices.Delete(keys, next, next+1)
		next = -1
	}
	if next < 0 {
		if key == nil {
			k, err := ks.newKey()
			if err != nil {
				return err
			}
			key = &k
		}
		keys = append(keys, setKey{Key: *key, Created: now})
		next = len(keys) - 1
	}
	for i := range keys {
		if keys[i].current() {
			keys[i].Retired = now
		}
	}
	keys[next].Signs = now
	// The current key last, after the retired ones.
	cur := keys[next]
	keys = append(slices.Delete(keys, next, next+1), cur)
	return ks.storeLocked(keys, now)
}

// storeLocked drops the keys retired longer than RetireAfter from keys, saves them and
// makes them the set's; ks.mu is held.
func (ks *KeySet) storeLocked(keys []setKey, now time.Time) error {
	keys = slices.DeleteFunc(keys, func(k setKey) bool { return !k.Retired.IsZero() && now.Sub(k.Retired) >= ks.opts.RetireAfter })
	if err := ks.saveLocked(keys); err != nil {
		return err
	}
	ks.keys = keys
	return nil
}

// maintainLocked brings the set up to date with the clock: the next key published
// PublishLead before the current key has signed for RotateEvery, taking over then, and
// retired keys dropped after RetireAfter; ks.mu is held.
func (ks *KeySet) maintainLocked() error {
	now := ks.opts.Now()
	cur := ks.keys[slices.IndexFunc(ks.keys, setKey.current)]
	age := now.Sub(cur.Signs)
	hasNext := slices.ContainsFunc(ks.keys, func(k setKey) bool { return k.Signs.IsZero() })
	switch {
	case ks.opts.RotateEvery > 0 && age >= ks.opts.RotateEvery:
		return ks.promoteLocked(nil)
	case ks.opts.RotateEvery > 0 && age >= ks.opts.RotateEvery-ks.opts.PublishLead && !hasNext:
		k, err := ks.newKey()
		if err != nil {
			return err
		}
		return ks.storeLocked(append(slices.Clone(ks.keys), setKey{Key: k, Created: now}), now)
	case slices.ContainsFunc(ks.keys, func(k setKey) bool { return !k.Retired.IsZero() && now.Sub(k.Retired) >= ks.opts.RetireAfter }):
		return ks.storeLocked(slices.Clone(ks.keys), now)
	}
	return nil
}

// signerAlgorithm returns the algorithm key signs with, refusing keys the set does not keep.
func signerAlgorithm(key any) (jose.SignatureAlgorithm, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return "", fmt.Errorf("claims: an RSA key of %d bits: want at least 2048", k.N.BitLen())
		}
		return jose.RS256, nil
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return "", errors.New("claims: an ECDSA key not on P-256")
		}
		return jose.ES256, nil
	}
	return "", fmt.Errorf("claims: a %T cannot sign: want an RSA or a P-256 ECDSA private key", key)
}

// saveLocked writes keys to the set's file, if it has one, through a temporary file so that
// a crash leaves the old file or the new one.
func (ks *KeySet) saveLocked(keys []setKey) error {
	if ks.path == "" {
		return nil
	}
	b, err := json.MarshalIndent(keyFile{Keys: keys}, "", "  ")
	if err != nil {
		return fmt.Errorf("claims: key file: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(ks.path), ".keys-*")
	if err != nil {
		return fmt.Errorf("claims: key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("claims: key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("claims: key file: %w", err)
	}
	if err := os.Rename(tmp.Name(), ks.path); err != nil {
		return fmt.Errorf("claims: key file: %w", err)
	}
	return nil
}

// signingKey returns the current key, after maintainLocked.
func (ks *KeySet) signingKey() (jose.JSONWebKey, error) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if err := ks.maintainLocked(); err != nil {
		return jose.JSONWebKey{}, err
	}
	return ks.keys[slices.IndexFunc(ks.keys, setKey.current)].Key, nil
}

// Sign signs payload (a JSON object) with the current key as a compact JWS of type JWT.
func (ks *KeySet) Sign(payload []byte) (string, error) {
	key, err := ks.signingKey()
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(key.Algorithm), Key: key},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("claims: signer: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("claims: signing: %w", err)
	}
	return jws.CompactSerialize()
}

// JWKS returns the public keys a relying party verifies the set's signatures with: the
// current key, the next one once published, and the replaced keys not yet past RetireAfter.
// A failure to make or save the next key leaves the set as it was.
func (ks *KeySet) JWKS() jose.JSONWebKeySet {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	// The next key is published whether or not anything was signed lately.
	_ = ks.maintainLocked()
	now := ks.opts.Now()
	var set jose.JSONWebKeySet
	for _, k := range ks.keys {
		if !k.Retired.IsZero() && now.Sub(k.Retired) >= ks.opts.RetireAfter {
			continue
		}
		set.Keys = append(set.Keys, k.Key.Public())
	}
	return set
}

// ServeHTTP answers the JWKS as application/jwk-set+json (RFC 7517 §8.5).
func (ks *KeySet) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	b, err := json.Marshal(ks.JWKS())
	if err != nil {
		http.Error(w, "JWKS: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	// Short enough that a rotation reaches the relying parties long before RetireAfter.
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write(b)
}
