package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"

	"golang.org/x/time/rate"

	"github.com/id4me/id4me-registry/authority"
	"github.com/id4me/id4me-registry/dnsverify"
	"github.com/id4me/id4me-registry/internal/cmdline"
	"github.com/id4me/id4me-registry/internal/publicaddr"
	"github.com/id4me/id4me-registry/registry"
	"github.com/id4me/id4me-registry/server"
	"github.com/id4me/id4me-registry/sqlstore"
)

type serveFlags struct {
	grpcAddr, httpAddr, db    string
	tlsCert, tlsKey, clientCA string
	dev                       bool
	dnsServers                cmdline.StringList
	dnsQuorum                 int
	dnsTimeout                time.Duration
	challengeTTL              time.Duration
	challengeMaxAttempts      int
	authorityIssuer           string
	authCacheTTL              time.Duration
	resolveCacheTTL           time.Duration
	agentRate                 float64
	agentBurst                int
	logLevel, logFormat       string
	shutdownTimeout           time.Duration
	transferPendingPeriod     time.Duration
	redemptionPeriod          time.Duration
	openIDCheckInterval       time.Duration
	challengeRetention        time.Duration
	requestIDRetention        time.Duration
	eventRetention            time.Duration
	sweepInterval             time.Duration
	worker                    bool
	eventPollInterval         time.Duration
	subjectType               string
	agentTokenAlg             string
	keyPublishLead            time.Duration
	keyVerifyFor              time.Duration
	keyRefreshInterval        time.Duration
	keyRotationPeriod         time.Duration
	keyRSABits                int
	kek                       kekFlags
	credentialLinkTTL         time.Duration
	loginBackoffAfter         int
	loginBackoffMax           time.Duration
	loginIDBackoffAfter       int
	loginIDBackoffMax         time.Duration
	loginIDBackoffHoldsAll    bool
	loginRate                 float64
	loginBurst                int
	registration              string
	registrationRate          rateFlag
	registrationBurst         int
	requirePKCE               bool
	clientSecretTTL           time.Duration
	opPolicyURI, opTOSURI     string
	serviceDocumentation      string
	uiDir, uiName             string
	limits                    *limitFlags
	configFile                string
	printConfig               bool
}

func serveFlagSet(ctx context.Context, stdout io.Writer) (*cmdline.Flags, *serveFlags) {
	f := &serveFlags{}
	cf := newFlags(ctx, stdout)
	cf.Notes = serveNotes
	fs := cf.FlagSet
	fs.StringVar(&f.configFile, "config", "", "configuration file, YAML (or TOML, by its .toml extension), whose keys are these flags' names; flags and environment variables win over it")
	fs.BoolVar(&f.printConfig, "print-config", false, "print the effective configuration (flags, environment, --config file, defaults) as a configuration file, secrets redacted, and exit")
	fs.StringVar(&f.grpcAddr, "grpc-addr", "127.0.0.1:9443", "gRPC listen address")
	fs.StringVar(&f.httpAddr, "http-addr", "127.0.0.1:8443", "HTTPS listen address: the identity authority, /healthz")
	fs.StringVar(&f.db, "db", "id4me-registry.db", "database: a SQLite file path, or a postgres:// DSN")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "TLS certificate chain (PEM); without it a self-signed certificate is made")
	fs.StringVar(&f.tlsKey, "tls-key", "", "TLS private key (PEM)")
	fs.StringVar(&f.clientCA, "client-ca", "", "CA certificates (PEM) agents' client certificates must chain to; without it, only pinned keys count")
	fs.BoolVar(&f.dev, "dev", false, "development mode: self-signed certificate, plaintext gRPC from loopback, agents' endpoints on loopback and private addresses (and http:// on loopback), relying parties' jwks_uri fetched from loopback and private addresses too, special-use names (.test, .example, …) registrable, prints a bootstrap operator credential")
	fs.Var(&f.dnsServers, "dns-server", "nameserver host:port asked as the authoritative server of every zone (repeatable); default: find each zone's nameservers through the system resolver")
	fs.IntVar(&f.dnsQuorum, "dns-quorum", 0, "how many answering nameservers must serve the challenge record; 0 means all that answer")
	fs.DurationVar(&f.dnsTimeout, "dns-timeout", 10*time.Second, "bound on one whole DNS check")
	fs.DurationVar(&f.challengeTTL, "challenge-ttl", time.Hour, "how long a challenge can be used")
	fs.IntVar(&f.challengeMaxAttempts, "challenge-max-attempts", 20, "failed DNS checks after which a challenge is invalid")
	fs.StringVar(&f.authorityIssuer, "authority-issuer", "", "the identity authority's issuer, an https URL (or a host) that identifiers' _openid records name as iss and that this listener serves; empty: https://<http listen address>, and _openid records are not checked")
	fs.StringVar(&f.subjectType, "subject-type", "pairwise", "subjects relying parties get by default: pairwise (one per relying-party host) or public")
	fs.StringVar(&f.agentTokenAlg, "agent-token-alg", "RS256", "algorithm of the access tokens agents receive in _claim_sources: RS256 or ES256")
	fs.DurationVar(&f.keyPublishLead, "key-publish-lead", authority.DefaultPublishLead, "how long a new signing key is published before it signs")
	fs.DurationVar(&f.keyVerifyFor, "key-verify-for", authority.DefaultVerifyFor, "how long a replaced signing key stays published after it stops signing")
	fs.DurationVar(&f.keyRefreshInterval, "key-refresh-interval", authority.DefaultRefreshInterval, "how often the signing keys are re-read (rotations by other instances or the keys command)")
	fs.DurationVar(&f.keyRotationPeriod, "key-rotation-period", authority.DefaultRotationPeriod, "age at which a signing key is replaced; negative: never on a schedule")
	fs.IntVar(&f.keyRSABits, "key-rsa-bits", authority.DefaultRSABits, "size of new RSA signing keys in bits (at least 2048)")
	f.kek.register(fs)
	fs.DurationVar(&f.credentialLinkTTL, "credential-link-ttl", 72*time.Hour, "how long a credential (setup or reset) link works")
	fs.IntVar(&f.loginBackoffAfter, "login-backoff-after", authority.DefaultSourceBackoff.Free, "login attempts one source (an IPv4 address or IPv6 /64) or known device may make for an identifier before each further one waits, 1s, then twice as long each time")
	fs.DurationVar(&f.loginBackoffMax, "login-backoff-max", authority.DefaultSourceBackoff.Max, "longest wait between the login attempts of one source for an identifier")
	fs.IntVar(&f.loginIDBackoffAfter, "login-identifier-backoff-after", authority.DefaultIdentifierBackoff.Free, "login attempts at an identifier, from all sources together, before a source that has used up its own --login-backoff-after attempts waits for each further one (a source that has not been guessing is never held back by it); also the allowance of an identifier's TOTP codes")
	fs.BoolVar(&f.loginIDBackoffHoldsAll, "login-identifier-backoff-holds-all", false, "stricter: the identifier's budget holds back every source, so guessing from many sources is slowed from its first attempts; but then it can hold back a holder on a new device as long as it goes on (known devices and a credential link's browser still get in)")
	fs.DurationVar(&f.loginIDBackoffMax, "login-identifier-backoff-max", authority.DefaultIdentifierBackoff.Max, "longest wait, across sources, between the attempts at an identifier of sources past their own free attempts; and between TOTP codes tried for it")
	fs.Var(removedFlag("failed logins no longer lock an identifier; see --login-backoff-after"), "login-lock-after", "removed")
	fs.Var(removedFlag("failed logins no longer lock an identifier; see --login-backoff-max"), "login-lock-for", "removed")
	fs.Float64Var(&f.loginRate, "login-rate", 1, "login attempts per second each source (an IPv4 address or IPv6 /64) may make (token bucket); raise it when many holders share an address (a proxy, a NAT)")
	fs.IntVar(&f.loginBurst, "login-burst", 20, "burst of the per-source login limit")
	fs.StringVar(&f.registration, "registration", string(authority.RegistrationOpen), "who may register relying parties: open (anyone, as ID4me needs) or token (with an initial access token from \"registration-tokens create\")")
	f.registrationRate.Set("1/min")
	fs.Var(&f.registrationRate, "registration-rate", "client registrations and updates (RFC 7592 PUT) each source address may make: N/s, N/min or N/h (token bucket); off for no limit")
	fs.IntVar(&f.registrationBurst, "registration-burst", 10, "burst of the per-source registration limit")
	fs.BoolVar(&f.requirePKCE, "require-pkce", false, "make PKCE (S256) mandatory for every client; without it, only public clients must use it (confidential ones may, and then must finish with the verifier)")
	fs.DurationVar(&f.clientSecretTTL, "client-secret-ttl", 0, "how long a client secret works (client_secret_expires_at); relying parties register again when it has passed; 0: forever")
	fs.StringVar(&f.opPolicyURI, "op-policy-uri", "", "https URL of the authority's privacy policy, published in discovery (op_policy_uri)")
	fs.StringVar(&f.opTOSURI, "op-tos-uri", "", "https URL of the authority's terms of service, published in discovery (op_tos_uri)")
	fs.StringVar(&f.serviceDocumentation, "service-documentation", "", "https URL of documentation for relying-party developers, published in discovery (service_documentation)")
	fs.StringVar(&f.uiName, "ui-name", authority.DefaultUIName, "the authority's name on its pages (login, consent, landing page)")
	fs.StringVar(&f.uiDir, "ui-dir", "", "directory of the operator's page templates (*.html, redefining those of authority/templates), style.css and favicon.svg, each replacing the embedded one")
	fs.DurationVar(&f.authCacheTTL, "auth-cache-ttl", 2*time.Second, "how long a successful authentication, and a relying party's registration, is remembered; revocations, and clients updated or deleted, on other instances take effect within it (negative: off)")
	fs.DurationVar(&f.resolveCacheTTL, "resolve-cache-ttl", 2*time.Second, "how long ResolveIdentifier may answer from memory; other instances' changes are seen within it (negative: off)")
	fs.Float64Var(&f.agentRate, "agent-rate", 100, "calls per second each agent may make (token bucket); 0 for no limit")
	fs.IntVar(&f.agentBurst, "agent-burst", 200, "burst of the per-agent limit")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long calls in flight may finish after SIGTERM")
	fs.DurationVar(&f.transferPendingPeriod, "transfer-pending-period", 0, "how long a transfer waits for the losing agent before the registry approves it; 0 completes transfers at once")
	fs.DurationVar(&f.redemptionPeriod, "redemption-period", 30*24*time.Hour, "how long a deleted identifier can be restored before it is purged")
	fs.DurationVar(&f.openIDCheckInterval, "openid-check-interval", 24*time.Hour, "time between two periodic checks of an identifier's _openid record")
	fs.DurationVar(&f.challengeRetention, "challenge-retention", 24*time.Hour, "how long an expired challenge is kept before it is deleted")
	fs.DurationVar(&f.requestIDRetention, "request-id-retention", 24*time.Hour, "how long the outcome of a RegisterIdentifier or RequestTransfer call with a request_id is kept, so that a retry with the same id gets it again")
	fs.DurationVar(&f.eventRetention, "event-retention", 30*24*time.Hour, "how long an acknowledged event is kept before it is deleted (unacknowledged events are kept)")
	fs.DurationVar(&f.sweepInterval, "sweep-interval", 10*time.Second, "time between two rounds of background sweeps (due transfers, purges, _openid checks, expired challenges, old events and request outcomes)")
	fs.BoolVar(&f.worker, "worker", true, "run the background sweeps in this instance; any number of instances sharing a database may run them")
	fs.DurationVar(&f.eventPollInterval, "event-poll-interval", time.Second, "how often an open WatchEvents stream looks for events written by other instances, and checks its caller's credential again")
	f.limits = addLimitFlags(fs)
	return cf, f
}

const serveNotes = `A setting comes from, in this order: its flag, its environment variable, the --config file,
its default. "serve --print-config" shows what the registry would run with. A --config file:

  # id4me-registry.yaml
  db: /var/lib/id4me-registry/registry.db
  grpc-addr: 0.0.0.0:9443
  dns-server: [192.0.2.53:53, 198.51.100.53:53]
  transfer-pending-period: 120h
`

// check refuses flag values the registry would otherwise replace by a default or misuse.
func (f *serveFlags) check() error {
	if f.subjectType != string(authority.SubjectPairwise) && f.subjectType != string(authority.SubjectPublic) {
		return fmt.Errorf("--subject-type must be pairwise or public, got %q", f.subjectType)
	}
	if f.transferPendingPeriod < 0 {
		return errors.New("--transfer-pending-period must not be negative")
	}
	if m := authority.RegistrationMode(f.registration); m != authority.RegistrationOpen && m != authority.RegistrationToken {
		return fmt.Errorf("--registration must be open or token, got %q", f.registration)
	}
	if f.clientSecretTTL < 0 {
		return errors.New("--client-secret-ttl must not be negative")
	}
	for _, u := range []struct{ name, value string }{
		{"op-policy-uri", f.opPolicyURI}, {"op-tos-uri", f.opTOSURI}, {"service-documentation", f.serviceDocumentation},
	} {
		if p, err := url.Parse(u.value); u.value != "" && (err != nil || p.Scheme != "https" || p.Host == "") {
			return fmt.Errorf("--%s must be an https URL, got %q", u.name, u.value)
		}
	}
	for _, d := range []struct {
		name  string
		value time.Duration
	}{
		{"redemption-period", f.redemptionPeriod},
		{"openid-check-interval", f.openIDCheckInterval},
		{"challenge-retention", f.challengeRetention},
		{"request-id-retention", f.requestIDRetention},
		{"event-retention", f.eventRetention},
		{"sweep-interval", f.sweepInterval},
		{"event-poll-interval", f.eventPollInterval},
	} {
		if d.value <= 0 {
			return fmt.Errorf("--%s must be positive, got %v", d.name, d.value)
		}
	}
	return f.limits.check()
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := serveFlagSet(ctx, stdout)
	sources, err := parseServeFlags(fs, args, &f.configFile)
	if err != nil {
		return err
	}
	if err := f.check(); err != nil {
		return err
	}
	if f.printConfig {
		return printConfig(stdout, fs, sources)
	}
	log, err := newLogger(stderr, f.logLevel, f.logFormat)
	if err != nil {
		return err
	}
	tlsCfg, err := loadTLS(f, log)
	if err != nil {
		return err
	}
	if f.dev && !(isLoopbackListen(f.grpcAddr) && isLoopbackListen(f.httpAddr) && isLoopbackListen(f.limits.adminAddr)) {
		return errors.New("--dev listens on loopback addresses only; drop --dev to listen elsewhere")
	}

	kek, oldKEK, err := f.kek.load()
	if err != nil {
		return err
	}
	if kek == nil && !f.dev {
		log.Warn("no --key-encryption-key-file: the authority's private signing keys are stored unsealed, and a copy of the database can sign tokens")
	}

	store, err := openStore(ctx, f.db, true, sqlstore.WithLogger(log))
	if err != nil {
		return err
	}
	defer store.Close()

	prom := server.NewPrometheusRegistry()
	metrics := server.NewMetrics(prom)
	verifier, err := dnsverify.New(dnsverify.Config{
		Servers: f.dnsServers, Quorum: f.dnsQuorum, Timeout: f.dnsTimeout, OnQuery: metrics.DNSQuery,
	})
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	// The authority reads the mapping through the resolver; the Service shares it, so that
	// its changes reach the authority at once, and gets the authority as the maker of
	// credential links: neither is handed the other after it exists.
	resolver := registry.NewResolver(store, f.resolveCacheTTL, nil)
	limit := rate.Limit(f.agentRate)
	if f.agentRate <= 0 {
		limit = rate.Inf
	}
	gl, err := listen("gRPC", "grpc-addr", f.grpcAddr)
	if err != nil {
		return err
	}
	defer gl.Close()
	hl, err := listen("HTTPS", "http-addr", f.httpAddr)
	if err != nil {
		return err
	}
	defer hl.Close()
	al, err := listen("operator's", "admin-addr", f.limits.adminAddr)
	if err != nil {
		return err
	}
	defer al.Close()

	issuer := issuerURL(f.authorityIssuer, hl.Addr().String())
	keys, err := authority.NewKeySet(ctx, store.Authority(), authority.KeyConfig{
		RSABits: f.keyRSABits, PublishLead: f.keyPublishLead, VerifyFor: f.keyVerifyFor,
		RefreshInterval: f.keyRefreshInterval, RotationPeriod: f.keyRotationPeriod, Logger: log,
		KEK: kek, PreviousKEK: oldKEK,
	})
	if err != nil {
		return keySetError(err)
	}
	auth, err := authority.New(authority.Config{
		Issuer: issuer, Store: store.Authority(), Keys: keys, Resolver: resolver,
		SubjectType: authority.SubjectType(f.subjectType), AgentTokenAlg: f.agentTokenAlg,
		AllowLoopbackHTTP: f.dev, AllowPrivateJWKSURI: f.dev, CredentialLinkTTL: f.credentialLinkTTL,
		SourceBackoff:             backoff(authority.DefaultSourceBackoff, f.loginBackoffAfter, f.loginBackoffMax),
		IdentifierBackoff:         backoff(authority.DefaultIdentifierBackoff, f.loginIDBackoffAfter, f.loginIDBackoffMax),
		IdentifierBackoffHoldsAll: f.loginIDBackoffHoldsAll,
		LoginRate:                 f.loginRate, LoginBurst: f.loginBurst,
		Registration: authority.RegistrationMode(f.registration), RegistrationRate: f.registrationRate.perSecond,
		RegistrationBurst: f.registrationBurst, RequirePKCE: f.requirePKCE, ClientSecretTTL: f.clientSecretTTL,
		ClientCacheTTL: f.authCacheTTL, OPPolicyURI: f.opPolicyURI, OPTOSURI: f.opTOSURI, ServiceDocumentation: f.serviceDocumentation,
		UIName: f.uiName, UIDir: f.uiDir, Logger: log, Observe: metrics.AuthorityEvent,
		HolderJournal: registry.NewHolderJournal(store),
	})
	if err != nil {
		return err
	}
	svc, err := registry.New(registry.Config{
		Store: store, DNS: verifier, OpenID: verifier, AuthorityIssuer: f.authorityIssuer,
		ChallengeTTL: f.challengeTTL, ChallengeMaxAttempts: f.challengeMaxAttempts,
		AllowLocalEndpoints: f.dev, AllowSpecialUseNames: f.dev,
		Observer: metrics, AuthCacheTTL: f.authCacheTTL, Resolver: resolver, CredentialLinks: auth,
		TransferPendingPeriod: f.transferPendingPeriod, RedemptionPeriod: f.redemptionPeriod,
		OpenIDCheckInterval: f.openIDCheckInterval, ChallengeRetention: f.challengeRetention,
		EventRetention: f.eventRetention, RequestIDRetention: f.requestIDRetention,
	})
	if err != nil {
		return err
	}

	srv, err := server.New(server.Config{
		Service: svc, Logger: log, TLS: tlsCfg, AllowPlaintextLoopback: f.dev,
		AgentRate: limit, AgentBurst: f.agentBurst, Prometheus: prom, EventPollInterval: f.eventPollInterval,
		Authority: auth.Handler(), Limits: f.limits.limits(), Ready: store.Ping, Pprof: f.limits.pprof,
	})
	if err != nil {
		return err
	}

	if f.dev {
		if err := devBootstrap(ctx, svc, stdout); err != nil {
			return err
		}
	} else if n, err := svc.CountOperators(ctx); err != nil {
		return err
	} else if n == 0 {
		log.Warn("no operator credential: nobody can call the AdminService; create the first with `id4me-registry admin bootstrap --db " + redactDSN(f.db) + "` (it prints the secret once)")
	}

	log.Info("serving", "grpc", gl.Addr().String(), "https", hl.Addr().String(), "admin", al.Addr().String(), "issuer", issuer, "db", redactDSN(f.db), "dev", f.dev, "worker", f.worker, "version", versionString())
	fmt.Fprintf(stdout, "gRPC on %s, HTTPS on %s, operator HTTP on %s (metrics: http://%[3]s/metrics)\nIdentity authority: %s\n", gl.Addr(), hl.Addr(), al.Addr(), issuer)

	workerCtx, stopWorker := context.WithCancel(ctx)
	defer stopWorker()
	workerDone := make(chan struct{})
	if f.worker {
		go func() {
			defer close(workerDone)
			svc.RunWorker(workerCtx, registry.WorkerConfig{Interval: f.sweepInterval, Logger: log, Observe: metrics.SweepDone})
		}()
	} else {
		close(workerDone)
	}
	authDone := make(chan struct{})
	go func() {
		defer close(authDone)
		auth.Run(workerCtx, f.sweepInterval)
	}()

	errc := make(chan error, 3)
	go func() { errc <- srv.ServeGRPC(gl) }()
	go func() { errc <- srv.ServeHTTPS(hl) }()
	go func() { errc <- srv.ServeAdmin(al) }()
	select {
	case <-ctx.Done():
		log.Info("shutting down: finishing calls in flight", "timeout", f.shutdownTimeout)
	case err = <-errc:
		log.Error("listener failed", "err", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimeout)
	defer cancel()
	// A sweep cut short rolls its transaction back; its items stay due for the next round,
	// here or on another instance.
	stopWorker()
	srv.Shutdown(sctx)
	<-authDone
	select {
	case <-workerDone:
	case <-sctx.Done():
		log.Warn("background sweep still running at the shutdown deadline")
	}
	log.Info("stopped")
	return err
}

// listen opens the listener of the flag name at addr; what is the listener, for messages.
func listen(what, name, addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, fmt.Errorf("%s listener: %w: another process (another serve?) listens on %s; stop it, or choose another address with --%s", what, err, addr, name)
	case err != nil:
		return nil, fmt.Errorf("%s listener (--%s): %w", what, name, err)
	}
	return l, nil
}

// backoff returns def with the number of free attempts and the longest wait of the flags.
func backoff(def authority.Backoff, free int, longest time.Duration) authority.Backoff {
	def.Free, def.Max = free, longest
	def.Forget = max(def.Forget, longest)
	return def
}

// removedFlag is a flag that was removed: setting it, or its environment variable, is an
// error that says what to use instead.
type removedFlag string

func (removedFlag) String() string     { return "" }
func (r removedFlag) Set(string) error { return errors.New("this flag was removed: " + string(r)) }

// Hidden keeps a removed flag out of the help.
func (removedFlag) Hidden() bool { return true }

// issuerURL returns the authority's issuer: the flag's value, an https URL or a host, or
// https://<the HTTPS listener's address>.
func issuerURL(flagValue, listenAddr string) string {
	switch {
	case flagValue == "":
		return "https://" + listenAddr
	case strings.Contains(flagValue, "://"):
		return strings.TrimSuffix(flagValue, "/")
	}
	return "https://" + flagValue
}

// devBootstrap makes sure a dev instance has an operator credential, printing a new one.
func devBootstrap(ctx context.Context, svc *registry.Service, stdout io.Writer) error {
	n, err := svc.CountOperators(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		fmt.Fprintln(stdout, "An operator credential exists already; `id4me-registry admin bootstrap --force` makes another.")
		return nil
	}
	_, secret, err := svc.CreateOperatorCredential(ctx, registry.System, "dev bootstrap")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Bootstrap operator credential (shown once):\n  export ID4ME_ADMIN_TOKEN=%s\n", secret)
	return nil
}

func loadTLS(f *serveFlags, log *slog.Logger) (*tls.Config, error) {
	var cert tls.Certificate
	switch {
	case f.tlsCert != "" && f.tlsKey != "":
		c, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		cert = c
	case f.tlsCert != "" || f.tlsKey != "":
		return nil, errors.New("--tls-cert and --tls-key go together")
	default:
		c, fp, err := server.DevCertificate()
		if err != nil {
			return nil, err
		}
		cert = c
		log.Warn("no --tls-cert given: serving a self-signed certificate", "sha256", fp)
	}
	if cert.Leaf != nil {
		sum := sha256.Sum256(cert.Leaf.Raw)
		log.Debug("server certificate", "sha256", hex.EncodeToString(sum[:]))
	}
	return server.ServerTLSConfig(cert, f.clientCA)
}

func isLoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && publicaddr.IsLoopbackHost(host)
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, got %q", format)
}
