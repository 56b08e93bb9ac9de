package authority

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/json"
)

// The signing algorithms the authority offers. RS256 is the one every ID4me relying party
// library accepts; ES256 is smaller and faster.
const (
	RS256 = string(jose.RS256)
	ES256 = string(jose.ES256)
)

// MinRSABits is the smallest RSA modulus the authority makes or loads.
const MinRSABits = 2048

// Defaults of KeyConfig.
const (
	DefaultRSABits         = 2048
	DefaultPublishLead     = time.Hour
	DefaultRotationPeriod  = 90 * 24 * time.Hour
	DefaultVerifyFor       = 24 * time.Hour
	DefaultRefreshInterval = 30 * time.Second
)

// ErrNoSigningKey is returned by Sign when no key of the algorithm may sign yet.
var ErrNoSigningKey = errors.New("authority: no signing key")

// firstKeyNotAfter is the notAfter of the first key of an algorithm: any key stored since
// then conflicts. The newest key of an algorithm never expires (only a newer key gives it an
// ExpireTime), so a store without a live key of an algorithm has none of it at all. Not the
// zero time: the store keeps the zero time as "not set".
var firstKeyNotAfter = time.Unix(0, 0).UTC()

// KeyConfig configures a KeySet. Zero fields take the defaults.
type KeyConfig struct {
	// RSABits is the size of new RSA keys; at least MinRSABits. Default DefaultRSABits.
	RSABits int
	// PublishLead is how long a rotated key is published in the JWKS before it signs, so
	// that relying parties holding a cached JWKS meet its kid only after they could have
	// fetched it; longer than RefreshInterval, so that every instance publishes a key before
	// any signs with it. Default DefaultPublishLead.
	PublishLead time.Duration
	// RotationPeriod is the age at which Run replaces an algorithm's newest key. Default
	// DefaultRotationPeriod; negative turns scheduled rotation off. It must exceed
	// PublishLead, or keys would be replaced before they ever signed.
	RotationPeriod time.Duration
	// VerifyFor is how long a retired key stays published: the longest lifetime of anything
	// signed (ID tokens, access tokens, signed userinfo) plus the clock skew allowed to
	// verifiers. The KeySet adds RefreshInterval to it, the time another instance may go on
	// signing with a key it does not yet know is retired. Default DefaultVerifyFor.
	VerifyFor time.Duration
	// RefreshInterval is how often Run re-reads the keys from the store, so that instances
	// sharing a store see each other's rotations. Default DefaultRefreshInterval.
	RefreshInterval time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives the rotations and failures of Run; default slog.Default().
	Logger *slog.Logger
	// KEK, when set, seals every new private key before it reaches the store, and opens the
	// keys sealed with it. Without it new keys are stored unsealed, and a sealed key fails
	// the load (ErrSealed).
	KEK *KeyEncryptionKey
	// PreviousKEK opens the keys sealed with the key-encryption key that KEK replaces, while
	// RewrapSigningKeys moves them to KEK.
	PreviousKEK *KeyEncryptionKey
}

func (c *KeyConfig) setDefaults() error {
	c.RSABits = cmp.Or(c.RSABits, DefaultRSABits)
	c.PublishLead = cmp.Or(c.PublishLead, DefaultPublishLead)
	c.RotationPeriod = cmp.Or(c.RotationPeriod, DefaultRotationPeriod)
	c.VerifyFor = cmp.Or(c.VerifyFor, DefaultVerifyFor)
	c.RefreshInterval = cmp.Or(c.RefreshInterval, DefaultRefreshInterval)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	switch {
	case c.RSABits < MinRSABits:
		return fmt.Errorf("authority: RSA keys of %d bits; the minimum is %d", c.RSABits, MinRSABits)
	case c.PublishLead < 0:
		return fmt.Errorf("authority: negative key publish lead %v", c.PublishLead)
	case c.VerifyFor < 0:
		return fmt.Errorf("authority: negative key verify-for %v", c.VerifyFor)
	case c.RefreshInterval < 0:
		return fmt.Errorf("authority: negative key refresh interval %v", c.RefreshInterval)
	case c.PublishLead <= c.RefreshInterval:
		// Other instances must see a new key before it signs, or their JWKS lacks it.
		return fmt.Errorf("authority: key publish lead %v is not longer than the refresh interval %v",
			c.PublishLead, c.RefreshInterval)
	case c.RotationPeriod > 0 && c.RotationPeriod <= c.PublishLead:
		return fmt.Errorf("authority: key rotation period %v is not longer than the publish lead %v",
			c.RotationPeriod, c.PublishLead)
	}
	return nil
}

// KeySet holds the authority's signing keys: it signs with the current key of each
// algorithm, publishes the JWKS, and rotates keys through the Store, which all instances
// share. It is safe for concurrent use.
//
// A key's life: created and published (CreateTime), signing from SignTime, retired when the
// next key of its algorithm takes over (RetireTime), published until ExpireTime, when
// nothing it signed is valid any more.
type KeySet struct {
	store Store
	cfg   KeyConfig

	// mu serialises reloads, so an older read never replaces a newer one.
	mu    sync.Mutex
	state atomic.Pointer[keyState]
	jwks  atomic.Pointer[jwksCache]
}

// keyState is one immutable reading of the store.
type keyState struct {
	keys []*loadedKey
	// byAlg holds each algorithm's keys, newest SignTime first.
	byAlg map[string][]*loadedKey
}

// loadedKey is a stored key as one reading of the store found it.
type loadedKey struct {
	SigningKey
	*parsedKey
}

// parsedKey is a stored key parsed, with the signers made for it. It outlives reloads, so
// that neither the parse nor the signers are redone every RefreshInterval.
type parsedKey struct {
	private crypto.Signer
	public  jose.JSONWebKey
	// idKey keys the jti of the agent tokens the key signs (agentTokenID): derived from the
	// private key, so every instance sharing the store derives the same, and no one
	// without the private key can.
	idKey []byte
	// signers maps a "typ" header value to a jose.Signer (safe for concurrent use).
	signers sync.Map
}

// jwksCache is the JWKS of a state, valid while the clock is in [from, until) (until zero:
// no end): no key is published or expires in between.
type jwksCache struct {
	state       *keyState
	from, until time.Time
	body        []byte
}

// NewKeySet loads the keys of store. An algorithm with no key at all gets one that signs at
// once; of instances starting together on an empty store, one makes it and the others load
// it.
func NewKeySet(ctx context.Context, store Store, cfg KeyConfig) (*KeySet, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	k := &KeySet{store: store, cfg: cfg}
	if err := k.Refresh(ctx); err != nil {
		return nil, err
	}
	if cfg.KEK != nil {
		k.warnUnsealed()
	}
	for _, alg := range k.Algorithms() {
		if len(k.state.Load().byAlg[alg]) > 0 {
			continue
		}
		if _, err := k.add(ctx, alg, true, firstKeyNotAfter); err != nil && !errors.Is(err, ErrConflict) {
			return nil, err
		}
		if len(k.state.Load().byAlg[alg]) == 0 {
			return nil, fmt.Errorf("authority: the store refused a first %s key, yet holds none", alg)
		}
	}
	return k, nil
}

// Algorithms returns the JWS algorithms the KeySet signs with, RS256 first.
func (k *KeySet) Algorithms() []string { return []string{RS256, ES256} }

func (k *KeySet) now() time.Time { return k.cfg.Now().UTC().Truncate(time.Microsecond) }

// Sign signs payload with the current key of alg and returns the JWS in compact
// serialization, its protected header carrying "alg", "kid" and "typ" (typ "" is "JWT";
// access tokens take "at+jwt", RFC 9068). The current key is, of the keys of alg between
// their SignTime and RetireTime at now, the one with the latest SignTime.
func (k *KeySet) Sign(alg string, payload []byte, typ string) (string, error) {
	key, err := k.current(alg)
	if err != nil {
		return "", err
	}
	return key.sign(payload, typ)
}

// current returns the key of alg that signs now (Sign).
func (k *KeySet) current(alg string) (*loadedKey, error) {
	now := k.cfg.Now()
	for _, c := range k.state.Load().byAlg[alg] {
		// A key retired before it reached its SignTime (replaced by an immediate rotation)
		// never signs.
		if !c.SignTime.After(now) && (c.RetireTime.IsZero() || now.Before(c.RetireTime)) {
			return c, nil
		}
	}
	return nil, fmt.Errorf("%w for %q", ErrNoSigningKey, alg)
}

// sign signs payload with key l as Sign does (typ "" is "JWT").
func (l *loadedKey) sign(payload []byte, typ string) (string, error) {
	if typ == "" {
		typ = "JWT"
	}
	signer, err := l.signer(typ)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("authority: signing with %s key %s: %w", l.Alg, l.ID, err)
	}
	return jws.CompactSerialize()
}

func (l *loadedKey) signer(typ string) (jose.Signer, error) {
	if s, ok := l.signers.Load(typ); ok {
		return s.(jose.Signer), nil
	}
	s, err := jose.NewSigner(
		jose.SigningKey{
			Algorithm: jose.SignatureAlgorithm(l.Alg),
			// A JWK, not the bare key: go-jose then puts its KeyID in the "kid" header.
			Key: jose.JSONWebKey{Key: l.private, KeyID: l.ID, Algorithm: l.Alg},
		},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
	if err != nil {
		return nil, fmt.Errorf("authority: signer for %s key %s: %w", l.Alg, l.ID, err)
	}
	actual, _ := l.signers.LoadOrStore(typ, s)
	return actual.(jose.Signer), nil
}

// JWKS returns the public JWK Set (RFC 7517 §5) in JSON: every key published now, that is
// from its CreateTime until its ExpireTime, each with "kid", "alg" and "use": "sig". It holds
// no private member. Served with a cache lifetime below PublishLead, a relying party always
// holds a key before it signs.
func (k *KeySet) JWKS() []byte {
	now := k.cfg.Now()
	st := k.state.Load()
	if c := k.jwks.Load(); c != nil && c.state == st && !now.Before(c.from) && (c.until.IsZero() || now.Before(c.until)) {
		return bytes.Clone(c.body)
	}
	c := buildJWKS(st, now)
	k.jwks.Store(c)
	return bytes.Clone(c.body)
}

func buildJWKS(st *keyState, now time.Time) *jwksCache {
	c := &jwksCache{state: st}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, key := range st.keys {
		if isPublished(key.SigningKey, now) {
			set.Keys = append(set.Keys, key.public)
		}
		for _, t := range []time.Time{key.CreateTime, key.ExpireTime} {
			switch {
			case t.IsZero():
			case !t.After(now):
				c.from = maxTime(c.from, t)
			case c.until.IsZero() || t.Before(c.until):
				c.until = t
			}
		}
	}
	body, err := json.Marshal(set)
	if err != nil {
		// Every key was marshalled once already when it was loaded.
		panic("authority: marshalling the JWKS: " + err.Error())
	}
	c.body = body
	return c
}

func isPublished(k SigningKey, now time.Time) bool {
	return !k.CreateTime.After(now) && (k.ExpireTime.IsZero() || now.Before(k.ExpireTime))
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Rotate makes a new key of alg, published at once, that signs from PublishLead on, or at
// once if immediate (when a key is feared compromised: relying parties that cached the JWKS
// will refetch it for the unknown kid). The keys of alg it replaces retire when it starts
// signing and stay published VerifyFor after that.
func (k *KeySet) Rotate(ctx context.Context, alg string, immediate bool) (SigningKey, error) {
	// Any key made before this call is replaced; only one from a clock ahead of ours stops it.
	return k.add(ctx, alg, immediate, k.now())
}

// RotateDue rotates each algorithm whose newest key is older than RotationPeriod (never
// when scheduled rotation is off). Of instances doing so together, one rotates and the
// others load its key.
func (k *KeySet) RotateDue(ctx context.Context) error {
	if k.cfg.RotationPeriod < 0 {
		return nil
	}
	var errs []error
	for _, alg := range k.Algorithms() {
		now := k.now()
		notAfter := now.Add(-k.cfg.RotationPeriod)
		keys := k.state.Load().byAlg[alg]
		newest := time.Time{}
		for _, key := range keys {
			newest = maxTime(newest, key.CreateTime)
		}
		if newest.After(notAfter) {
			continue
		}
		key, err := k.add(ctx, alg, len(keys) == 0, notAfter)
		switch {
		case err == nil:
			k.cfg.Logger.Info("signing key rotated", "alg", alg, "kid", key.ID, "signs_from", key.SignTime)
		case !errors.Is(err, ErrConflict):
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// add makes and stores a new key of alg unless a key of alg created after notAfter exists
// (ErrConflict), then reloads the store whatever the outcome.
func (k *KeySet) add(ctx context.Context, alg string, immediate bool, notAfter time.Time) (SigningKey, error) {
	private, err := k.generate(alg)
	if err != nil {
		return SigningKey{}, err
	}
	now := k.now()
	key := SigningKey{Alg: alg, CreateTime: now, SignTime: now}
	if !immediate {
		key.SignTime = now.Add(k.cfg.PublishLead)
	}
	if key.ID, err = keyID(private); err != nil {
		return SigningKey{}, err
	}
	jwk := jose.JSONWebKey{Key: private, KeyID: key.ID, Algorithm: alg, Use: "sig"}
	if key.PrivateJWK, err = jwk.MarshalJSON(); err != nil {
		return SigningKey{}, fmt.Errorf("authority: encoding the new %s key: %w", alg, err)
	}
	if k.cfg.KEK != nil {
		key.PrivateJWK = k.cfg.KEK.seal(key.ID, key.PrivateJWK)
	}
	err = k.store.AddSigningKey(ctx, key, notAfter, k.cfg.VerifyFor+k.cfg.RefreshInterval)
	if err != nil {
		err = fmt.Errorf("authority: storing a new %s key: %w", alg, err)
		if errors.Is(err, ErrConflict) {
			// Another instance rotated first: take its key.
			if rerr := k.Refresh(ctx); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
		return SigningKey{}, err
	}
	if err := k.Refresh(ctx); err != nil {
		return key, err
	}
	return key, nil
}

func (k *KeySet) generate(alg string) (crypto.Signer, error) {
	switch alg {
	case RS256:
		key, err := rsa.GenerateKey(rand.Reader, k.cfg.RSABits)
		if err != nil {
			return nil, fmt.Errorf("authority: generating an RSA key: %w", err)
		}
		return key, nil
	case ES256:
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("authority: generating a P-256 key: %w", err)
		}
		return key, nil
	}
	return nil, fmt.Errorf("authority: unsupported signing algorithm %q; use RS256 or ES256", alg)
}

// keyID names a key by its RFC 7638 thumbprint, base64url: unique, and the same wherever
// it is computed.
func keyID(private crypto.Signer) (string, error) {
	jwk := jose.JSONWebKey{Key: private.Public()}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("authority: key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// Refresh re-reads the keys from the store. A stored key that is malformed, or not what its
// algorithm needs, fails the refresh and leaves the keys in use as they were.
func (k *KeySet) Refresh(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	stored, err := k.store.SigningKeys(ctx, k.now())
	if err != nil {
		return fmt.Errorf("authority: reading the signing keys: %w", err)
	}
	old := map[string]*loadedKey{}
	if st := k.state.Load(); st != nil {
		for _, l := range st.keys {
			old[l.ID] = l
		}
	}
	st := &keyState{byAlg: map[string][]*loadedKey{}}
	for _, s := range stored {
		l := old[s.ID]
		switch {
		case l == nil || !bytes.Equal(l.PrivateJWK, s.PrivateJWK) || l.Alg != s.Alg:
			if l, err = loadKey(s, k.cfg.KEK, k.cfg.PreviousKEK); err != nil {
				return err
			}
		case !l.CreateTime.Equal(s.CreateTime) || !l.SignTime.Equal(s.SignTime) ||
			!l.RetireTime.Equal(s.RetireTime) || !l.ExpireTime.Equal(s.ExpireTime):
			// The same key with new times (retired since): keep its parse and signers.
			l = &loadedKey{SigningKey: s, parsedKey: l.parsedKey}
		}
		st.keys = append(st.keys, l)
		st.byAlg[l.Alg] = append(st.byAlg[l.Alg], l)
	}
	for _, keys := range st.byAlg {
		slices.SortStableFunc(keys, func(a, b *loadedKey) int {
			return cmp.Or(b.SignTime.Compare(a.SignTime), b.CreateTime.Compare(a.CreateTime))
		})
	}
	k.state.Store(st)
	return nil
}

// loadKey parses a stored key, opening it with whichever of keks sealed it, and refuses one
// that does not fit its algorithm.
func loadKey(s SigningKey, keks ...*KeyEncryptionKey) (*loadedKey, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("authority: stored signing key %q (%s): %s", s.ID, s.Alg, fmt.Sprintf(format, args...))
	}
	plain, err := openKey(s.ID, s.PrivateJWK, keks...)
	if err != nil {
		return nil, fmt.Errorf("authority: stored signing key %q (%s): %w", s.ID, s.Alg, err)
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(plain); err != nil {
		return nil, bad("not a JWK: %v", err)
	}
	if jwk.KeyID != s.ID {
		return nil, bad("the JWK's kid is %q", jwk.KeyID)
	}
	if jwk.Algorithm != "" && jwk.Algorithm != s.Alg {
		return nil, bad("the JWK's alg is %q", jwk.Algorithm)
	}
	var private crypto.Signer
	switch key := jwk.Key.(type) {
	case *rsa.PrivateKey:
		if s.Alg != RS256 {
			return nil, bad("an RSA key")
		}
		if bits := key.N.BitLen(); bits < MinRSABits {
			return nil, bad("an RSA key of %d bits; the minimum is %d", bits, MinRSABits)
		}
		// go-jose validated it. Precompute also the form crypto/rsa signs with, or every
		// signature would compute it again.
		key.Precompute()
		private = key
	case *ecdsa.PrivateKey:
		if s.Alg != ES256 || key.Curve != elliptic.P256() {
			return nil, bad("an EC key on %s", key.Curve.Params().Name)
		}
		private = key
	default:
		return nil, bad("a %T, not a private RSA or P-256 key", jwk.Key)
	}
	public := jose.JSONWebKey{Key: private.Public(), KeyID: s.ID, Algorithm: s.Alg, Use: "sig"}
	if _, err := public.MarshalJSON(); err != nil {
		return nil, bad("public JWK: %v", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(private)
	if err != nil {
		return nil, bad("PKCS #8: %v", err)
	}
	idKey, err := hkdf.Key(sha256.New, der, nil, "id4me-registry agent token jti", sha256.Size)
	if err != nil {
		return nil, bad("deriving the jti key: %v", err)
	}
	return &loadedKey{SigningKey: s, parsedKey: &parsedKey{private: private, public: public, idKey: idKey}}, nil
}

// Run refreshes the keys every RefreshInterval and rotates those due, until ctx ends.
// Failures are logged, each kind once until it succeeds again (a database outage would
// otherwise be logged at every interval); the keys in use stay as they were.
func (k *KeySet) Run(ctx context.Context) {
	t := time.NewTicker(k.cfg.RefreshInterval)
	defer t.Stop()
	rotation := failureLog{log: k.cfg.Logger, failed: "scheduled signing key rotation failed", recovered: "scheduled signing key rotation works again"}
	refresh := failureLog{log: k.cfg.Logger, failed: "reading the signing keys failed", recovered: "reading the signing keys works again"}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := k.RotateDue(ctx); ctx.Err() == nil {
			rotation.report(err)
		}
		if err := k.Refresh(ctx); ctx.Err() == nil {
			refresh.report(err)
		}
	}
}

// signJSON signs v, marshalled to JSON, as a compact JWS with the current key of alg.
func (a *Authority) signJSON(alg string, v any, typ string) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return a.keys.Sign(alg, b, typ)
}
