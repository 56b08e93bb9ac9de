package authority

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// OpenID Connect Back-Channel Logout 1.0: when a holder's session ends at the authority, each
// client the session logged in at that registered a backchannel_logout_uri receives a logout
// token there, from a queue in the store (Store.EndSession), so that the browser never waits
// for a client. The queue is bounded in size (Config.BackchannelLogoutQueue), and each
// logout in its attempts (Config.BackchannelLogoutAttempts, with a doubling backoff).

// backchannelLogoutEvent is the member of a logout token's "events" claim (BCL §2.4).
const backchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

const (
	// backchannelBatch is how many logouts one pass claims and sends at once.
	backchannelBatch = 16
	// backchannelPoll is how often the queue is read when no logout woke the sender.
	backchannelPoll = 5 * time.Second
	// backchannelGiveUp is how long a queued logout is kept at most, whatever its attempts:
	// a session that ended so long ago is of no concern to the client any more.
	backchannelGiveUp = 24 * time.Hour
	// backchannelMaxBackoff bounds the wait between two attempts.
	backchannelMaxBackoff = time.Hour
	// logoutTokenTTL is how long a logout token is valid (its exp).
	logoutTokenTTL = 2 * time.Minute
)

// logoutToken is the claims of a logout token (BCL §2.4): no nonce, so that it can never pass
// for an ID token.
type logoutToken struct {
	Issuer    string              `json:"iss"`
	Audience  string              `json:"aud"`
	IssuedAt  int64               `json:"iat"`
	Expiry    int64               `json:"exp"`
	ID        string              `json:"jti"`
	Subject   string              `json:"sub,omitempty"`
	SessionID string              `json:"sid,omitempty"`
	Events    map[string]struct{} `json:"events"`
}

// backchannelSender posts logout tokens: https only, no redirects, bounded in time, and,
// unless private addresses are allowed, never to an address that is not public (checked
// when the connection is made, as jwksFetcher does).
type backchannelSender struct {
	client *http.Client
	// woken tells the sender that logouts were queued.
	woken chan struct{}
}

func newBackchannelSender(allowPrivate bool, roots *x509.CertPool, timeout time.Duration) *backchannelSender {
	return &backchannelSender{woken: make(chan struct{}, 1), client: outboundClient(allowPrivate, roots, timeout)}
}

// wake tells the sender to read the queue now.
func (b *backchannelSender) wake() {
	select {
	case b.woken <- struct{}{}:
	default:
	}
}

// runBackchannel sends queued logouts until ctx ends: when logouts are queued, and every
// backchannelPoll for the retries.
func (a *Authority) runBackchannel(ctx context.Context) {
	t := time.NewTicker(backchannelPoll)
	defer t.Stop()
	failures := failureLog{log: a.log, failed: "authority: reading the back-channel logout queue failed", recovered: "authority: the back-channel logout queue is read again"}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.backchannel.woken:
		}
		for {
			n, err := a.SendBackchannelLogouts(ctx)
			if ctx.Err() != nil {
				return
			}
			failures.report(err)
			if err != nil || n < backchannelBatch {
				break
			}
		}
	}
}

// SendBackchannelLogouts makes one pass over the queue of back-channel logouts: it claims
// those due now (at most a batch), sends them at once, and removes each that the client
// answered 200 or 204, that was tried Config.BackchannelLogoutAttempts times, or whose
// client is gone or no longer asks for back-channel logouts; any other is tried again after
// a backoff. It returns how many logouts it claimed. Run calls it; tests call it to step
// the queue.
func (a *Authority) SendBackchannelLogouts(ctx context.Context) (int, error) {
	now := a.now()
	// The lease covers one attempt with room to spare: a sender that dies mid-batch leaves
	// its logouts to be claimed again after it.
	lease := 2*a.cfg.BackchannelLogoutTimeout + time.Minute
	due, err := a.store.ClaimBackchannelLogouts(ctx, now, lease, backchannelBatch)
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	for _, l := range due {
		wg.Go(func() { a.deliverLogout(ctx, l, now) })
	}
	wg.Wait()
	return len(due), nil
}

// deliverLogout sends one queued logout and settles it in the queue.
func (a *Authority) deliverLogout(ctx context.Context, l BackchannelLogout, now time.Time) {
	log := a.log.With("client_id", l.ClientID, "attempt", l.Attempts+1)
	c, err := a.client(ctx, l.ClientID)
	switch {
	case errors.Is(err, ErrNotFound):
		log.InfoContext(ctx, "authority: back-channel logout dropped: the client is no longer registered")
		a.settleLogout(ctx, l)
		return
	case err != nil:
		a.retryLogout(ctx, l, now, err)
		return
	case c.Metadata.BackchannelLogoutURI == "":
		log.InfoContext(ctx, "authority: back-channel logout dropped: the client no longer registers a backchannel_logout_uri")
		a.settleLogout(ctx, l)
		return
	}
	if err := a.postLogoutToken(ctx, c, l, now); err != nil {
		a.retryLogout(ctx, l, now, err)
		return
	}
	log.InfoContext(ctx, "authority: back-channel logout sent")
	a.settleLogout(ctx, l)
}

// postLogoutToken signs a logout token for l, as the client's ID tokens are signed (and
// encrypted, when it registered encrypted ID tokens), and posts it to the client's
// backchannel_logout_uri (BCL §2.5).
func (a *Authority) postLogoutToken(ctx context.Context, c Client, l BackchannelLogout, now time.Time) error {
	jwt, err := a.signJSON(c.Metadata.IDTokenSignedResponseAlg, logoutToken{
		Issuer: a.issuer, Audience: c.ID, IssuedAt: now.Unix(), Expiry: now.Add(logoutTokenTTL).Unix(), ID: randomID(),
		Subject: l.Subject, SessionID: l.SessionID, Events: map[string]struct{}{backchannelLogoutEvent: {}},
	}, "logout+jwt")
	if err != nil {
		return err
	}
	key, err := a.idTokenKey(ctx, c)
	if err == nil {
		jwt, err = a.encryptIDToken(c, key, jwt)
	}
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Metadata.BackchannelLogoutURI, strings.NewReader(url.Values{"logout_token": {jwt}}.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := a.backchannel.client.Do(req)
	if err != nil {
		return fmt.Errorf("posting the logout token: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("the client answered the logout token with HTTP %d", resp.StatusCode)
	}
	return nil
}

// retryLogout records a failed attempt of l at now: it is tried again after a backoff, or
// given up (and logged) once it has had its attempts or its time.
func (a *Authority) retryLogout(ctx context.Context, l BackchannelLogout, now time.Time, cause error) {
	attempts := l.Attempts + 1
	next := now.Add(a.backchannelBackoff(attempts))
	if attempts >= a.cfg.BackchannelLogoutAttempts || !next.Before(l.ExpireTime) {
		a.log.WarnContext(ctx, "authority: back-channel logout given up", "client_id", l.ClientID, "attempts", attempts, "err", cause)
		a.settleLogout(ctx, l)
		return
	}
	a.log.InfoContext(ctx, "authority: back-channel logout failed; it is tried again", "client_id", l.ClientID, "attempt", attempts, "next", next, "err", cause)
	if err := a.store.RetryBackchannelLogout(ctx, l.SessionID, l.ClientID, attempts, next); err != nil && !errors.Is(err, ErrNotFound) {
		a.log.ErrorContext(ctx, "authority: recording a failed back-channel logout", "client_id", l.ClientID, "err", err)
	}
}

// settleLogout removes l from the queue. A failure is logged: l is then sent again after
// its lease, which a client must bear anyway (a logout token may come twice).
func (a *Authority) settleLogout(ctx context.Context, l BackchannelLogout) {
	if err := a.store.DeleteBackchannelLogout(ctx, l.SessionID, l.ClientID); err != nil {
		a.log.ErrorContext(ctx, "authority: removing a back-channel logout from the queue", "client_id", l.ClientID, "err", err)
	}
}

// backchannelBackoff is the wait after the attempts-th failed attempt: BackchannelLogoutBackoff,
// doubling with each attempt, at most backchannelMaxBackoff.
func (a *Authority) backchannelBackoff(attempts int) time.Duration {
	d := a.cfg.BackchannelLogoutBackoff
	for i := 1; i < attempts && d < backchannelMaxBackoff; i++ {
		d *= 2
	}
	return min(d, backchannelMaxBackoff)
}

// recordSessionClient remembers that session s logged its holder in at client c as subject,
// when c asks for back-channel logouts, so that ending s tells c. A failure is logged, not
// returned: the login goes on without it.
func (a *Authority) recordSessionClient(ctx context.Context, c Client, s Session, subject string, now time.Time) {
	if c.Metadata.BackchannelLogoutURI == "" {
		return
	}
	err := a.store.PutSessionClient(ctx, SessionClient{SessionID: s.SID(), ClientID: c.ID, Subject: subject, CreateTime: now, ExpireTime: s.ExpireTime})
	if err != nil {
		a.log.WarnContext(ctx, "authority: recording a client of a session for back-channel logout", "client_id", c.ID, "err", err)
	}
}
