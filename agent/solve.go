package agent

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/challenge/dns01"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/id4me/id4me-registry/acme"
	"github.com/id4me/id4me-registry/dnsverify"
	"github.com/id4me/id4me-registry/id4me"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

// Step is a step of Register and Transfer.
type Step string

// The steps, in order. StepCleanUp runs whenever StepPublish succeeded, whatever happened next.
const (
	StepChallenge Step = "challenge" // CreateChallenge
	StepPublish   Step = "publish"   // the provider's Present
	StepWait      Step = "wait"      // polling the authoritative nameservers
	StepVerify    Step = "verify"    // VerifyChallenge
	StepRegister  Step = "register"  // RegisterIdentifier
	StepTransfer  Step = "transfer"  // RequestTransfer
	StepCleanUp   Step = "cleanup"   // the provider's CleanUp
)

// Doing describes the step as a phrase: "publishing the TXT record".
func (s Step) Doing() string {
	switch s {
	case StepChallenge:
		return "creating the challenge"
	case StepPublish:
		return "publishing the TXT record"
	case StepWait:
		return "waiting for the nameservers"
	case StepVerify:
		return "verifying the challenge"
	case StepRegister:
		return "registering the identifier"
	case StepTransfer:
		return "requesting the transfer"
	case StepCleanUp:
		return "removing the TXT record"
	}
	return string(s)
}

// Progress tells how Register or Transfer is getting on. Each step is reported when it starts
// (Done false) and when it ends (Done true, with Err set if it failed); the wait is reported
// after every look at the nameservers as well (Done false, Nameservers set).
type Progress struct {
	Step Step
	Done bool
	// Err is why the step failed; nil while it runs and when it succeeded.
	Err error
	// Identifier is the identifier as asked for; the challenge has it canonical.
	Identifier string
	// Challenge is the registry's challenge, once created (and as verified, from StepVerify).
	Challenge *registryv1.Challenge
	// Timeout and Interval bound the wait (StepWait).
	Timeout, Interval time.Duration
	// Nameservers is what each authoritative nameserver served at the last look (StepWait).
	Nameservers []NameserverState
}

// NameserverState is what one authoritative nameserver served for the challenge record.
type NameserverState struct {
	// Nameserver is the server's NS name, or its host:port when servers are pinned.
	Nameserver string `json:"nameserver"`
	// Address is the host:port asked; empty when the server has no address.
	Address string `json:"address,omitempty"`
	// Serving reports that the server answered with the challenge's value.
	Serving bool `json:"serving"`
	// Said describes the answer: "serves the record", "NXDOMAIN", "other TXT values …", an error.
	Said string `json:"said"`
}

// ErrNotPropagated is wrapped by the StepWait error when the bound ran out before every
// nameserver served the record.
var ErrNotPropagated = errors.New("not every authoritative nameserver serves the record")

// ErrNotVerified is wrapped by the StepVerify error when the registry checked the record and
// did not accept it; the StepError's Problem says what its nameservers answered.
var ErrNotVerified = errors.New("the registry did not accept the record")

// StepError is the error of Register and Transfer: the step that failed, the registry's
// problem when it stated one, and the cause (a gRPC status error for a refused call; match it
// with errors.Is, errors.As or status.FromError).
type StepError struct {
	Step Step
	// Problem is the registry's word: a challenge's problem (what each nameserver answered) for
	// StepVerify, or the reason (google.rpc.ErrorInfo) and message of a refused call.
	Problem *registryv1.Problem
	Err     error
}

func (e *StepError) Error() string {
	var b strings.Builder
	b.WriteString(e.Step.Doing())
	b.WriteString(": ")
	if st, ok := status.FromError(e.Err); ok {
		fmt.Fprintf(&b, "%s (%s", st.Message(), st.Code())
		if e.Problem != nil && e.Problem.Reason != "" {
			b.WriteString(", " + e.Problem.Reason)
		}
		b.WriteString(")")
		return b.String()
	}
	b.WriteString(e.Err.Error())
	if e.Problem != nil {
		fmt.Fprintf(&b, ": %s: %s", e.Problem.Reason, e.Problem.Detail)
	}
	return b.String()
}

func (e *StepError) Unwrap() error { return e.Err }

// stepError wraps err for step, taking the registry's reason and message from a status error.
func stepError(step Step, err error) *StepError {
	se := &StepError{Step: step, Err: err}
	if st, ok := status.FromError(err); ok {
		for _, d := range st.Details() {
			if info, ok := d.(*errdetails.ErrorInfo); ok {
				se.Problem = &registryv1.Problem{Reason: info.Reason, Detail: st.Message()}
			}
		}
	}
	return se
}

// Result is what Register or Transfer achieved.
type Result struct {
	// Challenge is the challenge as the registry verified it.
	Challenge *registryv1.Challenge
	// Identifier is the registered identifier (Register).
	Identifier *registryv1.Identifier
	// CredentialLink is the one-time link on the registry's authority where the identifier's
	// holder sets their credentials; the agent sends the holder there (Register). Nil when the
	// registry runs no authority.
	CredentialLink *registryv1.CredentialLink
	// Transfer is the requested transfer (Transfer): completed at once, or pending under a
	// registry policy with a pending period.
	Transfer *registryv1.Transfer
	// CleanUpErr, a *StepError for StepCleanUp, is set when the identifier was registered or
	// the transfer requested but the provider could not remove the TXT record.
	CleanUpErr error
}

// RegisterOption sets optional fields of the registration.
type RegisterOption func(*registryv1.RegisterIdentifierRequest)

// WithClaimsEndpoint registers the identifier with this claims endpoint (https URL) instead of
// the agent's default.
func WithClaimsEndpoint(url string) RegisterOption {
	return func(r *registryv1.RegisterIdentifierRequest) { r.ClaimsEndpoint = url }
}

// Register registers identifier to the agent, proving control of its DNS zone through
// provider: it creates a register challenge, publishes the record with provider.Present(the
// identifier's DNS name, the challenge's token, its key authorisation), waits until every
// authoritative nameserver serves it, has the registry verify it, registers the identifier,
// and removes the record with provider.CleanUp whatever happened after Present succeeded. The
// DNS name of a domain identifier is the identifier; that of an e-mail-form identifier,
// local@domain, is "<h>.<domain>" (id4me.DNSName), so lego publishes the record at
// _acme-challenge.<h>.<domain>. An error is a *StepError, joined with the StepCleanUp one when
// the record could not be removed either.
//
// The registration carries a request_id, and is sent once more when its answer is lost
// (UNAVAILABLE, DEADLINE_EXCEEDED while ctx lives on): the registry answers the retry of a
// registration it made with that registration and a fresh credential link.
func (c *Client) Register(ctx context.Context, identifier string, provider challenge.Provider, opts ...RegisterOption) (*Result, error) {
	return c.solve(ctx, identifier, registryv1.Purpose_PURPOSE_REGISTER, provider, func(ch *registryv1.Challenge, res *Result) error {
		req := &registryv1.RegisterIdentifierRequest{ChallengeId: ch.Id, RequestId: newRequestID()}
		for _, o := range opts {
			o(req)
		}
		resp, err := retryLost(ctx, func() (*registryv1.RegisterIdentifierResponse, error) { return c.rpc.RegisterIdentifier(ctx, req) })
		if err != nil {
			return stepError(StepRegister, err)
		}
		res.Identifier, res.CredentialLink = resp.Identifier, resp.CredentialLink
		return nil
	})
}

// Transfer asks for identifier, sponsored by another agent, to be transferred to this agent,
// proving control of its DNS zone through provider with the steps of Register; the last is
// RequestTransfer. Under the registry's default policy the transfer completes at once;
// otherwise it is pending and the agent's events tell how it ends. As Register, it carries a
// request_id and is sent once more when its answer is lost.
func (c *Client) Transfer(ctx context.Context, identifier string, provider challenge.Provider) (*Result, error) {
	return c.solve(ctx, identifier, registryv1.Purpose_PURPOSE_TRANSFER, provider, func(ch *registryv1.Challenge, res *Result) error {
		req := &registryv1.RequestTransferRequest{ChallengeId: ch.Id, RequestId: newRequestID()}
		t, err := retryLost(ctx, func() (*registryv1.Transfer, error) { return c.rpc.RequestTransfer(ctx, req) })
		if err != nil {
			return stepError(StepTransfer, err)
		}
		res.Transfer = t
		return nil
	})
}

// solve runs the steps up to a verified challenge, then use (register or transfer), and
// cleans up.
func (c *Client) solve(ctx context.Context, identifier string, purpose registryv1.Purpose, provider challenge.Provider,
	use func(*registryv1.Challenge, *Result) error) (res *Result, err error) {
	if provider == nil {
		return nil, errors.New("agent: no DNS provider given")
	}
	p := progressReporter{fn: c.opts.progress, base: Progress{Identifier: identifier}}
	finish := func(step Step, e error) error {
		p.report(Progress{Step: step, Done: true, Err: e})
		return e
	}

	p.report(Progress{Step: StepChallenge})
	ch, err := c.rpc.CreateChallenge(ctx, &registryv1.CreateChallengeRequest{Identifier: identifier, Purpose: purpose})
	if err != nil {
		return nil, finish(StepChallenge, stepError(StepChallenge, err))
	}
	// The provider publishes what lego computes from the key authorisation under the domain it
	// is given, the identifier's DNS name; make sure that is what the registry will look for
	// before touching DNS.
	dnsName := id4me.DNSName(ch.Identifier)
	if ch.DnsName != "" && ch.DnsName != dnsName {
		return nil, finish(StepChallenge, &StepError{Step: StepChallenge, Err: fmt.Errorf(
			"challenge %s names the DNS name %s, which is not that of its identifier %s (%s)", ch.Id, ch.DnsName, ch.Identifier, dnsName)})
	}
	if ch.RecordName != acme.RecordName(dnsName) || ch.RecordValue != acme.RecordValue(ch.KeyAuthorization) {
		return nil, finish(StepChallenge, &StepError{Step: StepChallenge, Err: fmt.Errorf(
			"challenge %s asks for %s TXT %q, which is not the record of its key authorisation", ch.Id, ch.RecordName, ch.RecordValue)})
	}
	p.base.Challenge = ch
	finish(StepChallenge, nil)

	p.report(Progress{Step: StepPublish})
	if err := provider.Present(dnsName, ch.Token, ch.KeyAuthorization); err != nil {
		return nil, finish(StepPublish, &StepError{Step: StepPublish, Err: err})
	}
	finish(StepPublish, nil)
	res = &Result{}
	defer func() {
		p.report(Progress{Step: StepCleanUp})
		var cleanErr error
		if e := provider.CleanUp(dnsName, ch.Token, ch.KeyAuthorization); e != nil {
			cleanErr = &StepError{Step: StepCleanUp, Err: e}
		}
		finish(StepCleanUp, cleanErr)
		switch {
		case cleanErr == nil:
		case err == nil:
			res.CleanUpErr = cleanErr
		default:
			err = errors.Join(err, cleanErr)
		}
	}()

	if err := c.waitForNameservers(ctx, &p, provider, ch); err != nil {
		return nil, finish(StepWait, err)
	}
	finish(StepWait, nil)

	p.report(Progress{Step: StepVerify})
	v, err := c.rpc.VerifyChallenge(ctx, &registryv1.VerifyChallengeRequest{Id: ch.Id})
	if err != nil {
		return nil, finish(StepVerify, stepError(StepVerify, err))
	}
	p.base.Challenge = v
	if v.Status != registryv1.Challenge_STATUS_VALID {
		return nil, finish(StepVerify, &StepError{Step: StepVerify, Problem: v.Problem,
			Err: fmt.Errorf("%w (challenge %s is %s)", ErrNotVerified, v.Id, strings.TrimPrefix(v.Status.String(), "STATUS_"))})
	}
	finish(StepVerify, nil)
	res.Challenge = v

	step := StepRegister
	if purpose == registryv1.Purpose_PURPOSE_TRANSFER {
		step = StepTransfer
	}
	p.report(Progress{Step: step})
	if err := use(v, res); err != nil {
		return nil, finish(step, err)
	}
	finish(step, nil)
	return res, nil
}

// progressReporter fills in what every report carries.
type progressReporter struct {
	fn   func(Progress)
	base Progress
}

func (r *progressReporter) report(p Progress) {
	if r.fn == nil {
		return
	}
	p.Identifier, p.Challenge = r.base.Identifier, r.base.Challenge
	r.fn(p)
}

// propagation returns how long to wait for the nameservers and how often to look: the
// client's setting, else the provider's, else lego's defaults.
func (c *Client) propagation(provider challenge.Provider) (timeout, interval time.Duration) {
	timeout, interval = dns01.DefaultPropagationTimeout, dns01.DefaultPollingInterval
	if pt, ok := provider.(challenge.ProviderTimeout); ok {
		t, i := pt.Timeout()
		if t > 0 {
			timeout = t
		}
		if i > 0 {
			interval = i
		}
	}
	if c.opts.propTimeout > 0 {
		timeout = c.opts.propTimeout
	}
	if c.opts.pollInterval > 0 {
		interval = c.opts.pollInterval
	}
	return timeout, interval
}

// waitForNameservers asks the authoritative nameservers of the challenge record's zone
// directly, following a CNAME as the registry does, every interval until every one of them
// serves the value or the timeout runs out.
func (c *Client) waitForNameservers(ctx context.Context, p *progressReporter, provider challenge.Provider, ch *registryv1.Challenge) error {
	timeout, interval := c.propagation(provider)
	p.report(Progress{Step: StepWait, Timeout: timeout, Interval: interval})
	cfg := dnsverify.Config{Servers: c.opts.dnsServers, Timeout: min(timeout, 10*time.Second)}
	v, err := dnsverify.New(cfg)
	if err != nil {
		return &StepError{Step: StepWait, Err: err}
	}
	deadline := time.Now().Add(timeout)
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var states []NameserverState
	var lookupErr error
	for {
		ans, err := v.LookupTXT(wctx, ch.RecordName)
		// A look cut short by the deadline says only that time ran out; keep the one before.
		if time.Now().Before(deadline) || states == nil {
			states, lookupErr = nameserverStates(ans, ch.RecordValue), err
			p.report(Progress{Step: StepWait, Timeout: timeout, Interval: interval, Nameservers: states})
		}
		if err == nil && len(states) > 0 && !slices.ContainsFunc(states, func(s NameserverState) bool { return !s.Serving }) {
			return nil
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return &StepError{Step: StepWait, Err: ctx.Err()}
			}
			return &StepError{Step: StepWait, Err: fmt.Errorf("%w within %v: %s", ErrNotPropagated, timeout, describeStates(states, lookupErr))}
		case <-tick.C:
		}
	}
}

// nameserverStates sums up what each nameserver answered for the record.
func nameserverStates(ans dnsverify.TXTAnswer, want string) []NameserverState {
	out := make([]NameserverState, 0, len(ans.Servers))
	for _, s := range ans.Servers {
		st := NameserverState{Nameserver: s.Nameserver, Address: s.Address, Serving: slices.Contains(s.Values, want)}
		switch {
		case st.Serving:
			st.Said = "serves the record"
		case s.Err != "":
			st.Said = s.Err
		case !s.Answered:
			st.Said = "no answer"
		case s.CNAME != "":
			st.Said = "CNAME " + s.CNAME
		case len(s.Values) > 0:
			st.Said = fmt.Sprintf("other TXT values %q", s.Values)
		case s.Rcode == "NOERROR":
			st.Said = "no TXT record (NOERROR)"
		default:
			st.Said = s.Rcode
		}
		out = append(out, st)
	}
	return out
}

// describeStates tells what the nameservers answered, for an error.
func describeStates(states []NameserverState, lookupErr error) string {
	if len(states) == 0 {
		if lookupErr != nil {
			return lookupErr.Error()
		}
		return "no nameserver was found"
	}
	parts := make([]string, 0, len(states))
	for _, s := range states {
		name := s.Nameserver
		if s.Address != "" && s.Address != s.Nameserver {
			name += " (" + s.Address + ")"
		}
		parts = append(parts, name+": "+s.Said)
	}
	return strings.Join(parts, "; ")
}

// retryLost makes call, and makes it once more when its answer was lost on the way
// (UNAVAILABLE, DEADLINE_EXCEEDED) while ctx lives on. call must carry a request_id, so that
// the registry answers a retry of what it did already with the first outcome.
func retryLost[T any](ctx context.Context, call func() (T, error)) (T, error) {
	out, err := call()
	if c := status.Code(err); (c == codes.Unavailable || c == codes.DeadlineExceeded) && ctx.Err() == nil {
		return call()
	}
	return out, err
}

// newRequestID returns a random UUID (version 4), a request_id as AIP-155 suggests.
func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
