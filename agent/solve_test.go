package agent_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/id4me/id4me-registry/acme"
	"github.com/id4me/id4me-registry/agent"
	"github.com/id4me/id4me-registry/internal/devdns"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

// zoneProvider is a lego DNS provider (challenge.ProviderTimeout) that publishes on test
// nameservers, the way an agent's DNS API would. It computes the record from the key
// authorisation as lego's providers do (dns01.GetChallengeInfo), without lego's CNAME lookup
// through the system resolver.
type zoneProvider struct {
	publishOn  []*devdns.Server // where Present writes the record
	removeFrom []*devdns.Server // where CleanUp removes it
	presentErr error
	cleanUpErr error
	timeout    time.Duration
	interval   time.Duration

	mu                 sync.Mutex
	presented, cleaned []string // the domains
}

func (p *zoneProvider) Present(domain, token, keyAuth string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.presentErr != nil {
		return p.presentErr
	}
	if token == "" || !strings.HasPrefix(keyAuth, token+".") {
		return errors.New("the key authorisation does not start with the token")
	}
	p.presented = append(p.presented, domain)
	for _, ns := range p.publishOn {
		ns.SetTXT(acme.RecordName(domain), acme.RecordValue(keyAuth))
	}
	return nil
}

func (p *zoneProvider) CleanUp(domain, _, _ string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cleaned = append(p.cleaned, domain)
	if p.cleanUpErr != nil {
		return p.cleanUpErr
	}
	for _, ns := range p.removeFrom {
		ns.Remove(acme.RecordName(domain), dns.TypeTXT)
	}
	return nil
}

func (p *zoneProvider) Timeout() (time.Duration, time.Duration) { return p.timeout, p.interval }

func (p *zoneProvider) calls() (presented, cleaned []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.presented), slices.Clone(p.cleaned)
}

// provider returns a provider that publishes on the registry's first nameserver only and
// removes the record from both, with a short poll interval.
func (r *testRegistry) provider() *zoneProvider {
	return &zoneProvider{publishOn: r.ns[:1], removeFrom: r.ns, timeout: 10 * time.Second, interval: 20 * time.Millisecond}
}

// progressLog collects progress reports.
type progressLog struct {
	reports []agent.Progress
	// onWait, when set, is called with every report of a look at the nameservers.
	onWait func(agent.Progress)
}

func (l *progressLog) record(p agent.Progress) {
	l.reports = append(l.reports, p)
	if l.onWait != nil && p.Step == agent.StepWait && p.Nameservers != nil {
		l.onWait(p)
	}
}

// steps lists the steps that ended, "step" or "step!" for a failed one.
func (l *progressLog) steps() []string {
	var out []string
	for _, p := range l.reports {
		switch {
		case p.Done && p.Err != nil:
			out = append(out, string(p.Step)+"!")
		case p.Done:
			out = append(out, string(p.Step))
		}
	}
	return out
}

func (l *progressLog) challengeID() string {
	for _, p := range l.reports {
		if p.Challenge != nil {
			return p.Challenge.Id
		}
	}
	return ""
}

// TestRegisterWaitsForEveryNameserver: the provider publishes on one nameserver; the record
// reaches the second (as a zone transfer would) only after the agent has seen it missing
// there. Register waits for both, then verifies and registers, and cleans up.
func TestRegisterWaitsForEveryNameserver(t *testing.T) {
	r := startRegistry(t, registryOptions{})
	agentID, token := r.newAgent(t, "alpha")
	var log progressLog
	var partial int
	log.onWait = func(p agent.Progress) {
		if len(p.Nameservers) == 2 && p.Nameservers[0].Serving && !p.Nameservers[1].Serving {
			partial++
			if !strings.Contains(p.Nameservers[1].Said, "NXDOMAIN") {
				t.Errorf("the second nameserver said %q, want NXDOMAIN", p.Nameservers[1].Said)
			}
			r.ns[1].SetTXT(p.Challenge.RecordName, p.Challenge.RecordValue)
		}
	}
	c := r.dial(t, token, agent.WithProgress(log.record))
	prov := r.provider()
	res, err := c.Register(context.Background(), "Alice.Example.Test.", prov)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if res.Identifier.GetName() != "alice.example.test" || res.Identifier.AgentId != agentID || res.CleanUpErr != nil {
		t.Fatalf("Register = %+v", res)
	}
	if res.Challenge.Status != registryv1.Challenge_STATUS_VALID || res.Challenge.Attempts != 1 {
		t.Errorf("challenge %v after %d checks; want valid after one", res.Challenge.Status, res.Challenge.Attempts)
	}
	if partial != 1 {
		t.Errorf("saw the record on one nameserver only %d times, want 1", partial)
	}
	want := []string{"challenge", "publish", "wait", "verify", "register", "cleanup"}
	if got := log.steps(); !slices.Equal(got, want) {
		t.Errorf("steps %v, want %v", got, want)
	}
	presented, cleaned := prov.calls()
	if !slices.Equal(presented, []string{"alice.example.test"}) || !slices.Equal(cleaned, presented) {
		t.Errorf("Present for %v, CleanUp for %v", presented, cleaned)
	}
	for _, ns := range r.ns {
		if serves(t, ns, "_acme-challenge.alice.example.test.") {
			t.Errorf("%s still serves the challenge record", ns.Addr)
		}
	}
	got, err := c.Identifier(context.Background(), "alice.example.test")
	if err != nil || got.AgentId != agentID {
		t.Fatalf("Identifier: %v, %v", got, err)
	}
}

// TestTransferThenEvents: a second agent takes the identifier over; the first one's event
// stream tells it, and the listing and deletion work for the new sponsor.
func TestTransferThenEvents(t *testing.T) {
	r := startRegistry(t, registryOptions{})
	_, tokenA := r.newAgent(t, "alpha")
	agentB, tokenB := r.newAgent(t, "beta")
	ctx := context.Background()
	a := r.dial(t, tokenA)
	both := &zoneProvider{publishOn: r.ns, removeFrom: r.ns, timeout: 10 * time.Second, interval: 20 * time.Millisecond}
	if _, err := a.Register(ctx, "bob.example.test", both); err != nil {
		t.Fatalf("Register: %v", err)
	}
	b := r.dial(t, tokenB)
	res, err := b.Transfer(ctx, "bob.example.test", both)
	if err != nil {
		t.Fatalf("Transfer: %v", err)
	}
	if res.Transfer.Status != registryv1.Transfer_STATUS_SERVER_APPROVED || res.Transfer.GainingAgentId != agentB {
		t.Fatalf("Transfer = %v", res.Transfer)
	}

	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var types []registryv1.Event_Type
	stop := errors.New("stop")
	err = a.WatchEvents(wctx, 0, func(ev *registryv1.Event) error {
		types = append(types, ev.Type)
		if ev.Type == registryv1.Event_TYPE_TRANSFER_COMPLETED_OUT {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("WatchEvents: %v after %v", err, types)
	}

	var names []string
	for i, err := range b.Identifiers(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, i.Name)
	}
	if !slices.Equal(names, []string{"bob.example.test"}) {
		t.Errorf("the new sponsor lists %v", names)
	}
	for _, err := range a.Identifiers(ctx) {
		t.Errorf("the old sponsor lists something (%v)", err)
	}
	del, err := b.Delete(ctx, "bob.example.test")
	if err != nil || !slices.Contains(del.Statuses, registryv1.IdentifierStatus_IDENTIFIER_STATUS_PENDING_DELETE) {
		t.Fatalf("Delete: %v, %v", del, err)
	}
}

// TestRefusedAfterPublishing: the record is published and verified, then the registry refuses
// the registration; the error names the step and the registry's reason, and the record is
// removed all the same.
func TestRefusedAfterPublishing(t *testing.T) {
	r := startRegistry(t, registryOptions{})
	_, token := r.newAgent(t, "alpha")
	var log progressLog
	c := r.dial(t, token, agent.WithProgress(log.record))
	prov := &zoneProvider{publishOn: r.ns, removeFrom: r.ns, timeout: 10 * time.Second, interval: 20 * time.Millisecond}
	res, err := c.Register(context.Background(), "carol.example.test", prov, agent.WithClaimsEndpoint("http://carol.example/userinfo"))
	var se *agent.StepError
	if !errors.As(err, &se) || se.Step != agent.StepRegister || res != nil {
		t.Fatalf("Register: %v, %v; want a register StepError", res, err)
	}
	if status.Code(err) != codes.InvalidArgument || se.Problem.GetReason() == "" || !strings.Contains(err.Error(), se.Problem.Reason) {
		t.Errorf("error %q (code %v, problem %v); want INVALID_ARGUMENT with the registry's reason", err, status.Code(err), se.Problem)
	}
	if got, want := log.steps(), []string{"challenge", "publish", "wait", "verify", "register!", "cleanup"}; !slices.Equal(got, want) {
		t.Errorf("steps %v, want %v", got, want)
	}
	for _, ns := range r.ns {
		if serves(t, ns, "_acme-challenge.carol.example.test.") {
			t.Errorf("%s still serves the challenge record", ns.Addr)
		}
	}
	if _, err := c.Identifier(context.Background(), "carol.example.test"); status.Code(err) != codes.NotFound {
		t.Errorf("carol.example.test after the refusal: %v, want NOT_FOUND", err)
	}
}

// TestVerifyRefused: every nameserver the agent knows serves the record, but the registry asks
// another one; the error is the registry's problem, and the record is removed.
func TestVerifyRefused(t *testing.T) {
	other, err := devdns.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	other.AddZone(zone)
	r := startRegistry(t, registryOptions{checkOn: other.Addr})
	_, token := r.newAgent(t, "alpha")
	c := r.dial(t, token)
	prov := &zoneProvider{publishOn: r.ns, removeFrom: r.ns, timeout: 10 * time.Second, interval: 20 * time.Millisecond}
	_, err = c.Register(context.Background(), "dave.example.test", prov)
	var se *agent.StepError
	if !errors.As(err, &se) || se.Step != agent.StepVerify || !errors.Is(err, agent.ErrNotVerified) {
		t.Fatalf("Register: %v; want a verify StepError", err)
	}
	if se.Problem.GetReason() != "DNS_RECORD_MISSING" || !strings.Contains(err.Error(), other.Addr) {
		t.Errorf("error %q, problem %v; want DNS_RECORD_MISSING naming the registry's nameserver", err, se.Problem)
	}
	if _, cleaned := prov.calls(); len(cleaned) != 1 {
		t.Errorf("CleanUp called %d times, want 1", len(cleaned))
	}
}

// TestPublishFails: a provider that cannot publish stops everything before DNS is polled or
// the registry asked; there is nothing to clean up.
func TestPublishFails(t *testing.T) {
	r := startRegistry(t, registryOptions{})
	_, token := r.newAgent(t, "alpha")
	var log progressLog
	c := r.dial(t, token, agent.WithProgress(log.record))
	refused := errors.New("dnsupdate: DNS update failed: server replied NOTAUTH")
	prov := &zoneProvider{presentErr: refused}
	_, err := c.Register(context.Background(), "erin.example.test", prov)
	var se *agent.StepError
	if !errors.As(err, &se) || se.Step != agent.StepPublish || !errors.Is(err, refused) {
		t.Fatalf("Register: %v; want a publish StepError wrapping the provider's error", err)
	}
	if want := "publishing the TXT record: " + refused.Error(); err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if got, want := log.steps(), []string{"challenge", "publish!"}; !slices.Equal(got, want) {
		t.Errorf("steps %v, want %v", got, want)
	}
	ch, err := c.RegistryService().GetChallenge(context.Background(), &registryv1.GetChallengeRequest{Id: log.challengeID()})
	if err != nil || ch.Attempts != 0 || ch.Status != registryv1.Challenge_STATUS_PENDING {
		t.Errorf("challenge after the failure: %v, %v; want pending and never checked", ch, err)
	}
}

// TestWaitIsBounded: a record that never appears ends the wait at the provider's timeout, with
// what each nameserver answered; the registry is not asked, and CleanUp still runs.
func TestWaitIsBounded(t *testing.T) {
	r := startRegistry(t, registryOptions{})
	_, token := r.newAgent(t, "alpha")
	var log progressLog
	c := r.dial(t, token, agent.WithProgress(log.record))
	prov := &zoneProvider{timeout: 300 * time.Millisecond, interval: 50 * time.Millisecond}
	_, err := c.Register(context.Background(), "frank.example.test", prov)
	var se *agent.StepError
	if !errors.As(err, &se) || se.Step != agent.StepWait || !errors.Is(err, agent.ErrNotPropagated) {
		t.Fatalf("Register: %v; want a wait StepError", err)
	}
	for _, ns := range r.ns {
		if !strings.Contains(err.Error(), ns.Addr+": NXDOMAIN") {
			t.Errorf("error %q does not say what %s answered", err, ns.Addr)
		}
	}
	if got, want := log.steps(), []string{"challenge", "publish", "wait!", "cleanup"}; !slices.Equal(got, want) {
		t.Errorf("steps %v, want %v", got, want)
	}
	var looks int
	for _, p := range log.reports {
		if p.Step == agent.StepWait && p.Nameservers != nil {
			looks++
			if p.Timeout != 300*time.Millisecond || p.Interval != 50*time.Millisecond {
				t.Fatalf("wait bounded by %v every %v, want the provider's 300ms every 50ms", p.Timeout, p.Interval)
			}
		}
	}
	if looks < 2 {
		t.Errorf("looked at the nameservers %d times, want several", looks)
	}
	ch, err := c.RegistryService().GetChallenge(context.Background(), &registryv1.GetChallengeRequest{Id: log.challengeID()})
	if err != nil || ch.Attempts != 0 {
		t.Errorf("challenge after the wait: %v, %v; want it never checked by the registry", ch, err)
	}
}

// TestUnreachableNameserver: a pinned nameserver that does not answer bounds the wait too, and
// the error says so.
func TestUnreachableNameserver(t *testing.T) {
	r := startRegistry(t, registryOptions{})
	_, token := r.newAgent(t, "alpha")
	r.ns[1].SetSilent(true)
	c := r.dial(t, token, agent.WithPropagation(time.Second, 100*time.Millisecond))
	prov := &zoneProvider{publishOn: r.ns, removeFrom: r.ns, timeout: time.Hour, interval: time.Hour}
	_, err := c.Register(context.Background(), "gina.example.test", prov)
	if !errors.Is(err, agent.ErrNotPropagated) || !strings.Contains(err.Error(), r.ns[1].Addr) {
		t.Fatalf("Register: %v; want a bounded wait naming %s", err, r.ns[1].Addr)
	}
	if _, cleaned := prov.calls(); len(cleaned) != 1 {
		t.Errorf("CleanUp called %d times, want 1", len(cleaned))
	}
}

// TestCleanUpFailsAfterSuccess: the registration stands; the failed cleanup is reported beside
// it, not as the call's error.
func TestCleanUpFailsAfterSuccess(t *testing.T) {
	r := startRegistry(t, registryOptions{})
	_, token := r.newAgent(t, "alpha")
	c := r.dial(t, token)
	gone := errors.New("the DNS API is down")
	prov := &zoneProvider{publishOn: r.ns, cleanUpErr: gone, timeout: 10 * time.Second, interval: 20 * time.Millisecond}
	res, err := c.Register(context.Background(), "hank.example.test", prov)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	var se *agent.StepError
	if res.Identifier == nil || !errors.As(res.CleanUpErr, &se) || se.Step != agent.StepCleanUp || !errors.Is(res.CleanUpErr, gone) {
		t.Fatalf("Register = %+v; want the identifier and a cleanup StepError", res)
	}
}

func TestDialRefusals(t *testing.T) {
	for _, tt := range []struct {
		name   string
		target string
		opts   []agent.Option
		want   string
	}{
		{"no credential", "127.0.0.1:9443", nil, "no credential"},
		{"plaintext off loopback", "registry.example:9443", []agent.Option{agent.WithToken("t"), agent.WithPlaintext()}, "loopback"},
		{"empty token", "127.0.0.1:9443", []agent.Option{agent.WithToken(" ")}, "empty"},
		{"bad DNS server", "127.0.0.1:9443", []agent.Option{agent.WithToken("t"), agent.WithDNSServers("127.0.0.1")}, "host:port"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := agent.Dial(tt.target, tt.opts...); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Dial: %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}
