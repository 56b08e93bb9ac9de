package accesstoken

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Lazy is a Verifier made at its first use: an agent's claims endpoint can start before
// the authority answers. Until discovery succeeds, Verify fails with an error that does not
// wrap ErrInvalid (the agent answers 503), and discovery is tried again at most once per
// JWKS refresh interval. It is safe for concurrent use.
type Lazy struct {
	client              *http.Client
	issuer, agentIssuer string
	opts                []Option
	// probe holds the options' clock and refresh interval.
	probe Verifier

	mu      sync.Mutex
	v       *Verifier
	lastTry time.Time
	lastErr error
}

// NewLazy returns a Lazy verifier; its arguments are NewVerifier's.
func NewLazy(client *http.Client, issuer, agentIssuer string, opts ...Option) *Lazy {
	l := &Lazy{client: client, issuer: issuer, agentIssuer: agentIssuer, opts: opts}
	l.probe = Verifier{now: time.Now, refreshInterval: DefaultJWKSRefreshInterval}
	for _, o := range opts {
		o(&l.probe)
	}
	return l
}

// Verifier returns the verifier, making it first when no attempt was made within the refresh
// interval.
func (l *Lazy) Verifier(ctx context.Context) (*Verifier, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.v != nil {
		return l.v, nil
	}
	now := l.probe.now()
	if l.lastErr != nil && now.Sub(l.lastTry) < l.probe.refreshInterval {
		return nil, fmt.Errorf("accesstoken: the authority's keys are not known yet: %w", l.lastErr)
	}
	l.lastTry = now
	v, err := NewVerifier(ctx, l.client, l.issuer, l.agentIssuer, l.opts...)
	if err != nil {
		l.lastErr = err
		return nil, err
	}
	l.v = v
	return v, nil
}

// Verify is Verifier.Verify, once the verifier is made.
func (l *Lazy) Verify(ctx context.Context, token string) (Token, error) {
	v, err := l.Verifier(ctx)
	if err != nil {
		return Token{}, err
	}
	return v.Verify(ctx, token)
}
