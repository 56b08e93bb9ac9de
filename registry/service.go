// Package registry is the ID4me registry's domain: agents, credentials, challenges,
// identifiers and identities, the policy that decides what may be registered, and the
// lifecycle service that applies it. It knows nothing of gRPC or HTTP; the server package
// puts a transport in front of Service.
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/id4me/id4me-registry/dnsverify"
)

// TXTChecker checks that a TXT record is served by a zone's authoritative nameservers.
// dnsverify.Verifier implements it.
type TXTChecker interface {
	CheckTXT(ctx context.Context, name, want string) dnsverify.Result
}

// OpenIDChecker checks the _openid record at an identifier's DNS name (Identifier.DNSName).
// dnsverify.Verifier implements it.
type OpenIDChecker interface {
	CheckOpenID(ctx context.Context, dnsName, issuerHost string) dnsverify.OpenIDCheck
}

// Observer is told of outcomes worth counting (metrics). Its methods must be cheap.
type Observer interface {
	// ChallengeChecked is called after every DNS check of a challenge with "valid" or the
	// problem's reason.
	ChallengeChecked(outcome string)
}

// Config configures a Service. Store is required; the rest have defaults.
type Config struct {
	Store Store
	// DNS checks challenge records; without it challenges cannot be verified (tools that
	// only administer the registry need none).
	DNS TXTChecker
	// OpenID checks _openid records for the periodic check (SweepOpenID); nil skips it.
	OpenID OpenIDChecker
	// AuthorityIssuer is this registry's authority (host or https URL), the iss an
	// identifier's _openid record should name; empty skips the check.
	AuthorityIssuer string
	// ChallengeTTL is how long a challenge can be used. Default 1h.
	ChallengeTTL time.Duration
	// ChallengeMaxAttempts is how many failed DNS checks turn a challenge invalid. Default 20.
	ChallengeMaxAttempts int
	// OpenIDCheckTimeout bounds one _openid check. Default 5s.
	OpenIDCheckTimeout time.Duration
	// OpenIDCheckInterval is the time between two periodic checks of an identifier's
	// _openid record. Default 24h.
	OpenIDCheckInterval time.Duration
	// TransferPendingPeriod is how long a transfer waits for the losing agent before the
	// registry approves it. 0 (the default) completes transfers at once.
	TransferPendingPeriod time.Duration
	// RedemptionPeriod is how long a deleted identifier can be restored before it is purged.
	// Default 30 days.
	RedemptionPeriod time.Duration
	// EventRetention is how long an acknowledged event is kept before it is deleted. Default
	// 30 days.
	EventRetention time.Duration
	// ChallengeRetention is how long an expired challenge is kept (GetChallenge reports it
	// expired) before it is deleted. Default 24h.
	ChallengeRetention time.Duration
	// RequestIDRetention is how long the outcome of a call made with a request_id is kept, so
	// that a retry with the same id gets it again. Default 24h.
	RequestIDRetention time.Duration
	// AllowLocalEndpoints accepts agents' claims endpoints and issuers on localhost and on
	// IP literals in loopback, private, link-local and other non-public ranges, and http://
	// on loopback hosts: dev mode, where agents run on the same machine. Otherwise such
	// endpoints are refused (urls.go).
	AllowLocalEndpoints bool
	// AllowSpecialUseNames accepts registrations of special-use names (.test, .example,
	// .localhost, …; see RegistrationPolicy): dev mode and tests.
	AllowSpecialUseNames bool
	// ResolveCacheTTL is how long Resolve may answer from memory; other instances' changes
	// are seen within it. Default 2s; negative disables the cache. It is not used when
	// Resolver is set.
	ResolveCacheTTL time.Duration
	// Resolver is the mapping as the authority reads it; give the authority and the Service
	// the same one, so that the Service's changes reach the authority at once. Nil makes one
	// over Store with ResolveCacheTTL.
	Resolver *Resolver
	// CredentialLinks makes credential links: the embedded authority. Nil means the
	// registry runs without one, and CreateCredentialLink answers NO_AUTHORITY.
	CredentialLinks CredentialLinkIssuer
	// AuthCacheTTL is how long a successful authentication is remembered; revocations and
	// suspensions made on other instances take effect within it. Default 2s; negative
	// disables the cache.
	AuthCacheTTL time.Duration
	// Observer is told of challenge outcomes; nil for none.
	Observer Observer
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Service applies the registry's lifecycle rules. Every method that changes state does it in
// one store transaction, with its journal entry.
type Service struct {
	store Store
	cfg   Config
	// resolver is cfg.Resolver; cache is its cache, which the Service's changes drop
	// entries of.
	resolver *Resolver
	cache    *resolveCache
	auth     *authCache
	hub      eventHub
}

// New returns a Service for cfg.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("registry: Config.Store is required")
	}
	if cfg.ChallengeTTL <= 0 {
		cfg.ChallengeTTL = time.Hour
	}
	if cfg.ChallengeMaxAttempts <= 0 {
		cfg.ChallengeMaxAttempts = 20
	}
	if cfg.OpenIDCheckTimeout <= 0 {
		cfg.OpenIDCheckTimeout = 5 * time.Second
	}
	if cfg.OpenIDCheckInterval <= 0 {
		cfg.OpenIDCheckInterval = 24 * time.Hour
	}
	if cfg.TransferPendingPeriod < 0 {
		return nil, errors.New("registry: Config.TransferPendingPeriod must not be negative")
	}
	if cfg.RedemptionPeriod <= 0 {
		cfg.RedemptionPeriod = 30 * 24 * time.Hour
	}
	if cfg.EventRetention <= 0 {
		cfg.EventRetention = 30 * 24 * time.Hour
	}
	if cfg.ChallengeRetention <= 0 {
		cfg.ChallengeRetention = 24 * time.Hour
	}
	if cfg.RequestIDRetention <= 0 {
		cfg.RequestIDRetention = 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ResolveCacheTTL == 0 {
		cfg.ResolveCacheTTL = defaultResolveCacheTTL
	}
	if cfg.Resolver == nil {
		cfg.Resolver = NewResolver(cfg.Store, cfg.ResolveCacheTTL, cfg.Now)
	}
	if cfg.AuthCacheTTL == 0 {
		cfg.AuthCacheTTL = 2 * time.Second
	}
	return &Service{store: cfg.Store, cfg: cfg, resolver: cfg.Resolver, cache: cfg.Resolver.cache, auth: newAuthCache(cfg.AuthCacheTTL)}, nil
}

// registrationPolicy is what may be registered anew under the configuration.
func (s *Service) registrationPolicy() RegistrationPolicy {
	return RegistrationPolicy{AllowSpecialUse: s.cfg.AllowSpecialUseNames}
}

// now returns the current time, truncated to the microsecond every store keeps.
func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Microsecond) }

// journal appends an entry for a change of object (objType, objID) from before to after;
// nil before or after mean creation or removal.
func (s *Service) journal(ctx context.Context, tx Tx, at time.Time, actor Actor, action, objType, objID string, before, after any) error {
	e := JournalEntry{Time: at, Actor: actor.String(), Action: action, ObjectType: objType, ObjectID: objID}
	var err error
	if e.Before, err = journalJSON(before); err != nil {
		return err
	}
	if e.After, err = journalJSON(after); err != nil {
		return err
	}
	if _, err := tx.AppendJournal(ctx, e); err != nil {
		return fmt.Errorf("append journal: %w", err)
	}
	return nil
}

func journalJSON(v any) (string, error) {
	if v == nil {
		return "", nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("journal view: %w", err)
	}
	return string(b), nil
}
