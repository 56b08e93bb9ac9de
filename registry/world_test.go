package registry_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/id4me/id4me-registry/dnsverify"
	"github.com/id4me/id4me-registry/internal/fakeclock"
	"github.com/id4me/id4me-registry/registry"
	"github.com/id4me/id4me-registry/sqlstore"
)

// The lifecycle rules are tested here against the Service itself, as Boulder tests its RA: a
// real store (SQLite, or the database a test names), a settable clock, a DNS that
// answers what the test publishes, and an authority that hands out credential links. No
// transport: the server package's tests show how the rules reach the wire.

// start is where every world's clock starts: a fixed time, so that failures read the same
// each run.
var start = time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC)

// The lifecycle periods of the worlds that ask for them.
const (
	pendingPeriod    = 5 * 24 * time.Hour
	redemptionPeriod = 30 * 24 * time.Hour
)

// operator is the actor of an operator's calls.
var operator = registry.Actor{Kind: registry.ActorOperator, ID: "op_test", CredentialID: "op_test"}

// clock is the settable clock the worlds run on.
type clock = fakeclock.Clock

// fakeDNS is the registry's TXTChecker and OpenIDChecker: it serves the TXT values the test
// publishes, reports the problems the test sets, and answers _openid checks as told.
type fakeDNS struct {
	mu       sync.Mutex
	txt      map[string]string
	problems map[string]dnsverify.Problem
	openid   map[string]dnsverify.OpenIDCheck
	// checked are the record names CheckTXT was asked about, in order; openidChecked the DNS
	// names CheckOpenID was.
	checked       []string
	openidChecked []string
	// issuers are the issuer hosts CheckOpenID was asked to expect.
	issuers []string
}

func newFakeDNS() *fakeDNS {
	return &fakeDNS{txt: map[string]string{}, problems: map[string]dnsverify.Problem{}, openid: map[string]dnsverify.OpenIDCheck{}}
}

// answeredBy is the query every failed check reports, so tests can see the queries pass
// through to the challenge's problem.
var answeredBy = dnsverify.Query{Nameserver: "ns1.example.test", Address: "192.0.2.53:53", Transport: "udp", Rcode: "NOERROR"}

func (d *fakeDNS) CheckTXT(_ context.Context, name, want string) dnsverify.Result {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.checked = append(d.checked, name)
	res := dnsverify.Result{Name: name, Zone: "example.test.", Queries: []dnsverify.Query{answeredBy}}
	if p, ok := d.problems[name]; ok {
		if p.Reason != "" {
			res.Problem = &p
		}
		return res
	}
	switch got, ok := d.txt[name]; {
	case !ok:
		res.Problem = &dnsverify.Problem{Reason: dnsverify.ReasonRecordMissing, Detail: "no TXT record at " + name}
	case got != want:
		res.Problem = &dnsverify.Problem{Reason: dnsverify.ReasonRecordMismatch, Detail: fmt.Sprintf("found %q, want %q", got, want)}
	default:
		res.OK = true
	}
	return res
}

func (d *fakeDNS) CheckOpenID(_ context.Context, dnsName, issuerHost string) dnsverify.OpenIDCheck {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.openidChecked = append(d.openidChecked, dnsName)
	d.issuers = append(d.issuers, issuerHost)
	if c, ok := d.openid[dnsName]; ok {
		return c
	}
	return dnsverify.OpenIDCheck{Status: dnsverify.OpenIDMissing, Detail: "no _openid record"}
}

// publish serves the challenge's record.
func (d *fakeDNS) publish(c registry.Challenge) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.txt[c.RecordName()] = c.RecordValue()
}

// fail makes checks of the record name fail with the problem; with a problem of no reason,
// they fail without saying why.
func (d *fakeDNS) fail(name string, p dnsverify.Problem) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.problems[name] = p
}

// setOpenID makes the _openid check of dnsName answer c.
func (d *fakeDNS) setOpenID(dnsName string, c dnsverify.OpenIDCheck) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.openid[dnsName] = c
}

// openidRecord is a check that found the record "v=OID1;iss=<iss>;clp=<clp>" (no clp when
// clp is empty): a match when iss is this registry's authority, as the checker judges it. Whether
// clp names the sponsor is the registry's to judge.
func openidRecord(iss, clp string) dnsverify.OpenIDCheck {
	rec := "v=OID1;iss=" + iss
	if clp != "" {
		rec += ";clp=" + clp
	}
	c := dnsverify.OpenIDCheck{Status: dnsverify.OpenIDMatches, Record: rec, Parsed: dnsverify.OpenIDRecord{Version: "OID1", Issuer: iss, ClaimsProvider: clp}}
	if iss != authorityHost {
		c.Status, c.Detail = dnsverify.OpenIDMismatch, "the record names the issuer "+iss
	}
	return c
}

// checks returns how many times CheckTXT was asked about name.
func (d *fakeDNS) checks(name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, c := range d.checked {
		if c == name {
			n++
		}
	}
	return n
}

// openidChecks returns the DNS names CheckOpenID was asked about, in order.
func (d *fakeDNS) openidChecks() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.openidChecked)
}

// authorityHost is the issuer the worlds' _openid records should name.
const authorityHost = "id.example.test"

// fakeLinks is the authority, as far as credential links go: it makes a link for every request,
// writes the registry's record of it in a transaction of its own, as the authority does, and
// keeps the requests, so a test can ask whether a link would still be honoured.
type fakeLinks struct {
	store registry.Store
	now   func() time.Time
	mu    sync.Mutex
	made  []registry.CredentialLinkRequest
	// err, when set, is what IssueCredentialLink fails with.
	err error
}

func (f *fakeLinks) IssueCredentialLink(ctx context.Context, req registry.CredentialLinkRequest) (registry.CredentialLink, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return registry.CredentialLink{}, f.err
	}
	link := registry.CredentialLink{
		URL:        fmt.Sprintf("https://%s/credential/secret-%d", authorityHost, len(f.made)),
		ExpireTime: f.now().Add(time.Hour), Purpose: req.Purpose, Identifier: req.Identifier,
	}
	if req.Record != nil {
		if err := f.store.Tx(ctx, func(tx registry.Tx) error { return req.Record(ctx, tx, link) }); err != nil {
			return registry.CredentialLink{}, err
		}
	}
	f.made = append(f.made, req)
	return link, nil
}

// last returns the request of the last link made.
func (f *fakeLinks) last(t *testing.T) registry.CredentialLinkRequest {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.made) == 0 {
		t.Fatal("no credential link was made")
	}
	return f.made[len(f.made)-1]
}

// world is a registry and the parties around it.
type world struct {
	t     *testing.T
	ctx   context.Context
	store *sqlstore.Store
	svc   *registry.Service
	// resolver is what the authority reads the mapping through, shared with svc.
	resolver *registry.Resolver
	cfg      registry.Config
	clock    *clock
	dns      *fakeDNS
	links    *fakeLinks
}

// option changes a world's configuration before its Service is made.
type option func(*registry.Config)

// pending makes transfers wait pendingPeriod for the losing agent.
func pending(c *registry.Config) { c.TransferPendingPeriod = pendingPeriod }

// newWorld returns a registry that completes transfers at once, keeps deleted identifiers
// redemptionPeriod, lets a challenge be checked three times in its hour, and accepts the
// special-use names (example.test) the tests register, as dev mode does. Its store is a
// SQLite database of its own.
func newWorld(t *testing.T, opts ...option) *world {
	t.Helper()
	return newWorldOn(t, freshDatabase(t), opts...)
}

// schema is a SQLite database with the schema and nothing else, made once per test binary:
// each world starts from a copy, since copying a database takes a fraction of the time
// migrating one does (a hundredth, under the race detector).
var schema struct {
	once sync.Once
	dir  string
	err  error
}

// TestMain removes the schema database once the tests have run.
func TestMain(m *testing.M) {
	code := m.Run()
	if schema.dir != "" {
		os.RemoveAll(schema.dir)
	}
	os.Exit(code)
}

// freshDatabase returns the path of a copy of the schema database in t's temporary directory.
func freshDatabase(t *testing.T) string {
	t.Helper()
	schema.once.Do(func() {
		if schema.dir, schema.err = os.MkdirTemp("", "registry-test-"); schema.err != nil {
			return
		}
		var s *sqlstore.Store
		if s, schema.err = sqlstore.Open(context.Background(), filepath.Join(schema.dir, "schema.db")); schema.err == nil {
			schema.err = s.Close()
		}
	})
	if schema.err != nil {
		t.Fatalf("schema database: %v", schema.err)
	}
	b, err := os.ReadFile(filepath.Join(schema.dir, "schema.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "registry.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// newWorldOn is newWorld on the database dsn.
func newWorldOn(t *testing.T, dsn string, opts ...option) *world {
	t.Helper()
	ctx := context.Background()
	store, err := sqlstore.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	w := &world{t: t, ctx: ctx, store: store, clock: fakeclock.New(start), dns: newFakeDNS()}
	w.links = &fakeLinks{store: store, now: w.clock.Now}
	w.cfg = registry.Config{
		Store: store, DNS: w.dns, OpenID: w.dns, AuthorityIssuer: authorityHost, CredentialLinks: w.links,
		ChallengeTTL: time.Hour, ChallengeMaxAttempts: 3, RedemptionPeriod: redemptionPeriod,
		AllowSpecialUseNames: true, Now: w.clock.Now,
	}
	for _, o := range opts {
		o(&w.cfg)
	}
	if w.cfg.Resolver == nil {
		w.cfg.Resolver = registry.NewResolver(store, w.cfg.ResolveCacheTTL, w.cfg.Now)
	}
	w.resolver = w.cfg.Resolver
	if w.svc, err = registry.New(w.cfg); err != nil {
		t.Fatal(err)
	}
	return w
}

// instance returns another Service on the world's store, with the world's configuration
// changed by opts and a resolver of its own: another instance sharing the database.
func (w *world) instance(opts ...option) *registry.Service {
	w.t.Helper()
	cfg := w.cfg
	cfg.Resolver = nil
	for _, o := range opts {
		o(&cfg)
	}
	s, err := registry.New(cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	return s
}

// newAgent creates an active agent called name, with its own account key, a claims endpoint
// and an issuer under <name>.agent.test, and returns the actor of its calls.
func (w *world) newAgent(name string) registry.Actor {
	w.t.Helper()
	a, err := w.svc.CreateAgent(w.ctx, operator, registry.AgentSpec{
		DisplayName: name, ClaimsEndpoint: "https://" + name + ".agent.test/userinfo",
		Issuer: "https://" + name + ".agent.test", AccountKeyJWK: newAccountKey(w.t),
	})
	if err != nil {
		w.t.Fatalf("CreateAgent(%s): %v", name, err)
	}
	return registry.Actor{Kind: registry.ActorAgent, ID: a.ID}
}

// newAccountKey returns a new public JWK.
func newAccountKey(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := jose.JSONWebKey{Key: &key.PublicKey}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(jwk)
}

// agent reads an agent from the store.
func (w *world) agent(a registry.Actor) registry.Agent {
	w.t.Helper()
	got, err := w.store.GetAgent(w.ctx, a.ID)
	if err != nil {
		w.t.Fatalf("GetAgent(%s): %v", a.ID, err)
	}
	return got
}

// setAgentState suspends or resumes an agent as the operator.
func (w *world) setAgentState(a registry.Actor, st registry.AgentState) registry.Agent {
	w.t.Helper()
	got, err := w.svc.UpdateAgent(w.ctx, operator, a.ID, registry.AgentSpec{State: st}, []registry.AgentField{registry.AgentFieldState}, "")
	if err != nil {
		w.t.Fatalf("UpdateAgent(%s, %s): %v", a.ID, st, err)
	}
	return got
}

// challenge creates a challenge for identifier as agent a.
func (w *world) challenge(a registry.Actor, identifier string, purpose registry.Purpose) registry.Challenge {
	w.t.Helper()
	c, err := w.svc.CreateChallenge(w.ctx, a, identifier, purpose)
	if err != nil {
		w.t.Fatalf("CreateChallenge(%s, %s): %v", identifier, purpose, err)
	}
	return c
}

// validChallenge creates a challenge, publishes its record and verifies it.
func (w *world) validChallenge(a registry.Actor, identifier string, purpose registry.Purpose) registry.Challenge {
	w.t.Helper()
	c := w.challenge(a, identifier, purpose)
	w.dns.publish(c)
	v, err := w.svc.VerifyChallenge(w.ctx, a, c.ID)
	if err != nil {
		w.t.Fatalf("VerifyChallenge(%s): %v", identifier, err)
	}
	if v.Status != registry.ChallengeValid {
		w.t.Fatalf("VerifyChallenge(%s): %s, problem %+v", identifier, v.Status, v.Problem)
	}
	return v
}

// register registers identifier to agent a with a new valid challenge.
func (w *world) register(a registry.Actor, identifier string) registry.IdentifierInfo {
	w.t.Helper()
	c := w.validChallenge(a, identifier, registry.PurposeRegister)
	i, err := w.svc.RegisterIdentifier(w.ctx, a, c.ID, "", "")
	if err != nil {
		w.t.Fatalf("RegisterIdentifier(%s): %v", identifier, err)
	}
	return i
}

// requestTransfer has agent a ask for identifier with a new valid transfer challenge.
func (w *world) requestTransfer(a registry.Actor, identifier string) registry.Transfer {
	w.t.Helper()
	c := w.validChallenge(a, identifier, registry.PurposeTransfer)
	tr, err := w.svc.RequestTransfer(w.ctx, a, c.ID, "")
	if err != nil {
		w.t.Fatalf("RequestTransfer(%s): %v", identifier, err)
	}
	return tr
}

// identifier reads an identifier from the store; ok is false when there is none.
func (w *world) identifier(name string) (registry.Identifier, bool) {
	w.t.Helper()
	i, err := w.store.GetIdentifier(w.ctx, name)
	if registry.KindOf(err) == registry.KindNotFound {
		return registry.Identifier{}, false
	}
	if err != nil {
		w.t.Fatalf("GetIdentifier(%s): %v", name, err)
	}
	return i, true
}

// mustIdentifier reads an identifier that must exist.
func (w *world) mustIdentifier(name string) registry.Identifier {
	w.t.Helper()
	i, ok := w.identifier(name)
	if !ok {
		w.t.Fatalf("identifier %s is gone", name)
	}
	return i
}

// identity reads an identity from the store.
func (w *world) identity(id string) registry.Identity {
	w.t.Helper()
	got, err := w.store.GetIdentity(w.ctx, id)
	if err != nil {
		w.t.Fatalf("GetIdentity(%s): %v", id, err)
	}
	return got
}

// update sets identifier's claims endpoint override and client statuses as agent a.
func (w *world) update(a registry.Actor, identifier, claimsEndpoint string, statuses ...registry.Status) registry.IdentifierInfo {
	w.t.Helper()
	i, err := w.svc.UpdateIdentifier(w.ctx, a, registry.IdentifierUpdate{Identifier: identifier, ClaimsEndpoint: claimsEndpoint, Statuses: statuses})
	if err != nil {
		w.t.Fatalf("UpdateIdentifier(%s): %v", identifier, err)
	}
	return i
}

// remove deletes identifier as agent a.
func (w *world) remove(a registry.Actor, identifier string) registry.IdentifierInfo {
	w.t.Helper()
	i, err := w.svc.DeleteIdentifier(w.ctx, a, identifier, "")
	if err != nil {
		w.t.Fatalf("DeleteIdentifier(%s): %v", identifier, err)
	}
	return i
}

// serverStatus sets identifier's server statuses as the operator.
func (w *world) serverStatus(identifier, reason string, statuses ...registry.Status) registry.IdentifierInfo {
	w.t.Helper()
	i, err := w.svc.SetServerStatus(w.ctx, operator, identifier, statuses, reason, "")
	if err != nil {
		w.t.Fatalf("SetServerStatus(%s, %v): %v", identifier, statuses, err)
	}
	return i
}

// events returns agent a's unacknowledged events, oldest first.
func (w *world) events(a registry.Actor) []registry.Event {
	w.t.Helper()
	var out []registry.Event
	token := ""
	for {
		evs, next, err := w.svc.ListEvents(w.ctx, a, registry.MaxPageSize, token)
		if err != nil {
			w.t.Fatalf("ListEvents: %v", err)
		}
		out = append(out, evs...)
		if token = next; token == "" {
			return out
		}
	}
}

// allEvents returns agent a's events, acknowledged or not, oldest first.
func (w *world) allEvents(a registry.Actor) []registry.Event {
	w.t.Helper()
	evs, err := w.svc.EventsAfter(w.ctx, a, 0, registry.MaxPageSize)
	if err != nil {
		w.t.Fatalf("EventsAfter: %v", err)
	}
	return evs
}

// journal returns the journal entries of one object, oldest first.
func (w *world) journal(objType, objID string) []registry.JournalEntry {
	w.t.Helper()
	entries, _, err := w.svc.ListJournal(w.ctx, registry.JournalFilter{ObjectType: objType, ObjectID: objID}, registry.MaxPageSize, "")
	if err != nil {
		w.t.Fatalf("ListJournal: %v", err)
	}
	return entries
}

// actions lists the actions of journal entries, in order.
func actions(entries []registry.JournalEntry) []string {
	out := make([]string, len(entries))
	for k, e := range entries {
		out[k] = e.Action
	}
	return out
}

// sweep runs one of the Service's sweeps and returns how many items it handled.
func (w *world) sweep(run func(context.Context) (int, error)) int {
	w.t.Helper()
	n, err := run(w.ctx)
	if err != nil {
		w.t.Fatalf("sweep: %v", err)
	}
	return n
}

// eventTypes lists the types of evs, in order.
func eventTypes(evs []registry.Event) []registry.EventType {
	out := make([]registry.EventType, len(evs))
	for k, e := range evs {
		out[k] = e.Type
	}
	return out
}

// eventIDs lists the IDs of evs, in order.
func eventIDs(evs []registry.Event) []int64 {
	out := make([]int64, len(evs))
	for k, e := range evs {
		out[k] = e.ID
	}
	return out
}

// The reasons Resolve gives for an identifier that resolves to nothing (KindNotFound).
const (
	notResolvedOnHold        = "NOT_RESOLVED_ON_HOLD"
	notResolvedPendingDelete = "NOT_RESOLVED_PENDING_DELETE"
)

// wantErr fails unless err is a registry error of kind with reason.
func wantErr(t *testing.T, err error, kind registry.Kind, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s %s", kind, reason)
	}
	if k, r := registry.KindOf(err), string(registry.ReasonOf(err)); k != kind || r != reason {
		t.Fatalf("got %s %s (%v), want %s %s", k, r, err, kind, reason)
	}
}

// wantStatuses fails unless got holds exactly want, in any order.
func wantStatuses(t *testing.T, what string, got []registry.Status, want ...registry.Status) {
	t.Helper()
	if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))) {
		t.Fatalf("%s: statuses %v, want %v", what, got, want)
	}
}
