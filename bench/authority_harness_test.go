package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/argon2"
	"golang.org/x/time/rate"

	"github.com/id4me/id4me-registry/authority"
	"github.com/id4me/id4me-registry/internal/oidctest"
	"github.com/id4me/id4me-registry/registry"
	"github.com/id4me/id4me-registry/server"
	"github.com/id4me/id4me-registry/sqlstore"
)

// authorityEnv is a registry with its embedded authority on a real HTTPS loopback listener,
// wired as `serve` wires them (SQLite file store, registry.Service as the mapping, the
// KeySet and Authority on the store, server.New with the authority's handler, ServeHTTPS,
// logging at info level to a discarded writer), plus one agent whose claims endpoint is a
// test agent (oidctest.Agent) that verifies the authority's access tokens.
type authorityEnv struct {
	store  *sqlstore.Store
	svc    *registry.Service
	keys   *authority.KeySet
	issuer string
	// roots trusts the authority's and the agent's certificates.
	roots   *x509.CertPool
	agentID string
	agent   *oidctest.Agent
	// rpClient is the relying party's client, and the agent's to reach the authority.
	rpClient *http.Client
}

// authorityOptions configure an authorityEnv.
type authorityOptions struct {
	// agentTokenAlg is authority.Config.AgentTokenAlg; empty: its default, RS256.
	agentTokenAlg string
	// password is authority.Config.Password; zero: authority.DefaultPasswordParams.
	password authority.PasswordParams
}

// benchClaims is the claims parameter of every benchmark login: two claims, so userinfo
// distributes them to the agent with a signed access token.
const benchClaims = `{"userinfo":{"email":{"essential":true,"reason":"to send your receipts"},"name":null}}`

// newAuthorityEnv starts a registry and its authority on a SQLite file of tb's own; tb's
// cleanup stops them.
func newAuthorityEnv(tb testing.TB, opts authorityOptions) *authorityEnv {
	tb.Helper()
	ctx := context.Background()
	e := &authorityEnv{}
	store, err := sqlstore.Open(ctx, filepath.Join(tb.TempDir(), "registry.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	e.store = store
	prom := prometheus.NewRegistry()
	metrics := server.NewMetrics(prom)
	resolver := registry.NewResolver(store, 0, nil)
	cert, _, err := server.DevCertificate()
	if err != nil {
		tb.Fatal(err)
	}
	tlsCfg, err := server.ServerTLSConfig(cert, "")
	if err != nil {
		tb.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	e.issuer = "https://" + hl.Addr().String()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if e.keys, err = authority.NewKeySet(ctx, store.Authority(), authority.KeyConfig{Logger: log}); err != nil {
		tb.Fatal(err)
	}
	auth, err := authority.New(authority.Config{
		Issuer: e.issuer, Store: store.Authority(), Keys: e.keys, Resolver: resolver,
		AgentTokenAlg: opts.agentTokenAlg, Password: opts.password, Logger: log,
		// Every benchmark login comes from 127.0.0.1: the per-source limit (1/s, burst 20)
		// would refuse nearly all of them.
		LoginRate: 1e9, LoginBurst: 1 << 20,
	})
	if err != nil {
		tb.Fatal(err)
	}
	if e.svc, err = registry.New(registry.Config{
		Store: store, Observer: metrics, AllowLocalEndpoints: true, Resolver: resolver, CredentialLinks: auth,
	}); err != nil {
		tb.Fatal(err)
	}
	srv, err := server.New(server.Config{
		Service: e.svc, Logger: log, TLS: tlsCfg, AgentRate: rate.Inf, Prometheus: prom, Authority: auth.Handler(),
	})
	if err != nil {
		tb.Fatal(err)
	}
	go srv.ServeHTTPS(hl)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})

	e.roots = x509.NewCertPool()
	e.roots.AddCert(cert.Leaf)
	e.rpClient = oidctest.HTTPClient(e.roots, false)
	tb.Cleanup(e.rpClient.CloseIdleConnections)
	e.agent = oidctest.StartAgent(e.rpClient, e.issuer, time.Now)
	tb.Cleanup(e.agent.Server.Close)
	// Every client made from roots trusts the agent too.
	e.roots.AddCert(e.agent.Server.Certificate())
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	jwk, err := jose.JSONWebKey{Key: &key.PublicKey}.MarshalJSON()
	if err != nil {
		tb.Fatal(err)
	}
	a, err := e.svc.CreateAgent(ctx, registry.System, registry.AgentSpec{
		DisplayName: "bench agent", ClaimsEndpoint: e.agent.Endpoint, Issuer: e.agent.Issuer, AccountKeyJWK: string(jwk),
	})
	if err != nil {
		tb.Fatal(err)
	}
	e.agentID = a.ID
	return e
}

// cheapPassword are argon2id parameters for setups that do not measure logins.
var cheapPassword = authority.PasswordParams{Memory: 64, Time: 1, Threads: 1}

// parentScoped is the TB of a sub-benchmark whose cleanups and temporary directories belong
// to its parent, so that what its first run sets up lasts for its later runs (one per b.N)
// and is not made again.
type parentScoped struct {
	testing.TB
	parent testing.TB
}

func (p parentScoped) Cleanup(f func()) { p.parent.Cleanup(f) }
func (p parentScoped) TempDir() string  { return p.parent.TempDir() }

// benchUser is a holder with an identifier of the env's agent and a password.
type benchUser struct {
	identifier, password string
	roots                *x509.CertPool
}

// browser returns the user with a fresh browser: a new cookie jar (no session, so the
// login asks for the password) and a new connection (a new TLS handshake).
func (u benchUser) browser() *oidctest.Holder {
	return &oidctest.Holder{Client: oidctest.HTTPClient(u.roots, true), Identifier: u.identifier, Password: u.password}
}

// users registers n identifiers with the env's agent (straight through the store) and has
// each holder set a password through a setup link from CreateCredentialLink, hashed with the
// authority's parameters. The agent answers for each with an email and a name.
func (e *authorityEnv) users(tb testing.TB, n int) []benchUser {
	tb.Helper()
	ctx := context.Background()
	names := seedIdentifiers(tb, e.store, e.agentID, "holder", n)
	out := make([]benchUser, n)
	for k, name := range names {
		out[k] = benchUser{identifier: name, password: "correct horse battery staple " + rand.Text(), roots: e.roots}
		e.agent.Claims[name] = map[string]any{"email": fmt.Sprintf("holder%d@%s", k, zone), "name": fmt.Sprintf("Holder %d", k)}
	}
	err := parallel(concurrency, n, func(_, item int) error {
		u := out[item-1]
		link, err := e.svc.CreateCredentialLink(ctx, registry.Actor{Kind: registry.ActorAgent, ID: e.agentID}, u.identifier, registry.CredentialLinkSetup)
		if err != nil {
			return err
		}
		h := u.browser()
		defer h.Client.CloseIdleConnections()
		p, err := h.SetCredentials(link.URL, false, nil)
		if err != nil || p.Title() != "Your credentials are set" {
			return fmt.Errorf("setting credentials of %s: %v; page %d %q %q", u.identifier, err, p.Status, p.Title(), p.Alert())
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// newRP registers a relying party that takes userinfo as JSON (no
// userinfo_signed_response_alg), with client_secret_basic.
func (e *authorityEnv) newRP(tb testing.TB) *oidctest.RP {
	tb.Helper()
	rp, err := oidctest.NewRP(context.Background(), e.rpClient, e.issuer, map[string]any{"client_name": "Bench Shop"})
	if err != nil {
		tb.Fatal(err)
	}
	return rp
}

// login runs one whole login of u at rp in a fresh browser (see benchUser.browser), whose
// connection it closes afterwards: authorize, the login (and consent) pages, the code for
// tokens, the ID token verified by go-oidc, userinfo. It checks that userinfo distributes
// the claims.
func login(rp *oidctest.RP, u benchUser, extra map[string]string) (*oidctest.Result, error) {
	h := u.browser()
	defer h.Client.CloseIdleConnections()
	params := map[string]string{"claims": benchClaims}
	for k, v := range extra {
		params[k] = v
	}
	req := rp.AuthRequest(params)
	cb, p, err := h.Login(req.URL)
	if err != nil {
		return nil, fmt.Errorf("login of %s: %w (page %d %q: %q)", h.Identifier, err, p.Status, p.Title(), p.Alert())
	}
	res, err := rp.Finish(req, cb, time.Now)
	if err != nil {
		return nil, fmt.Errorf("finishing the login of %s: %w", h.Identifier, err)
	}
	if err := checkUserinfo(res.Userinfo); err != nil {
		return nil, err
	}
	return res, nil
}

// checkUserinfo fails a userinfo answer without the distributed claims.
func checkUserinfo(u map[string]any) error {
	src, _ := u["_claim_sources"].(map[string]any)
	if len(src) != 1 || u["sub"] == nil {
		return fmt.Errorf("userinfo without distributed claims: %v", u)
	}
	return nil
}

// protocol returns the HTTP major version client speaks to the authority (it asks for the
// discovery document).
func (e *authorityEnv) protocol(client *http.Client) (int, error) {
	resp, err := client.Get(e.issuer + "/.well-known/openid-configuration")
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.ProtoMajor, nil
}

// signPayload is an agent access token's claims, as the authority signs them on the
// userinfo path (the same as authority.BenchmarkSign's).
var signPayload = []byte(`{"iss":"https://id.example","sub":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",` +
	`"aud":"https://agent.example","id4me.identifier":"alice.example","clm":["email","name"],` +
	`"scope":["openid","email","profile"],"client_id":"c_0123456789","iat":1900000000,"exp":1900000600,"jti":"j_0123456789"}`)

// rawSignRate signs n payloads with the KeySet's current key of alg from concurrency
// goroutines, as the userinfo endpoint signs agent access tokens (typ JWT), and returns
// signatures per second.
func (e *authorityEnv) rawSignRate(alg string, n int) (float64, error) {
	start := time.Now()
	err := parallel(concurrency, n, func(_, _ int) error {
		_, err := e.keys.Sign(alg, signPayload, "JWT")
		return err
	})
	return float64(n) / time.Since(start).Seconds(), err
}

// rawHashRate computes n argon2id hashes with p (as the authority checks a password: a
// 16-byte salt, a 32-byte key) from as many goroutines as the authority hashes at once by
// default (Config.HashConcurrency: 2 × GOMAXPROCS) and returns hashes per second. More at
// once are slower here: each hash takes p.Memory KiB (16 × 19 MiB made 47 hashes/s on this
// machine against 78 with 4).
func rawHashRate(p authority.PasswordParams, n int) float64 {
	password, salt := []byte("correct horse battery staple"), []byte("0123456789abcdef")
	start := time.Now()
	parallel(2*runtime.GOMAXPROCS(0), n, func(_, _ int) error {
		argon2.IDKey(password, salt, p.Time, p.Memory, p.Threads, 32)
		return nil
	})
	return float64(n) / time.Since(start).Seconds()
}

// TestAuthorityHarness runs the authority benchmarks' machinery at a small scale and with
// cheap password hashes: for each agent token algorithm, two holders log in (the second
// time with prompt=consent on a fresh browser), userinfo is fetched from per-goroutine
// clients, the agent accepts the access token, and the raw signing rate is measured.
func TestAuthorityHarness(t *testing.T) {
	for _, alg := range []string{authority.RS256, authority.ES256} {
		t.Run(alg, func(t *testing.T) {
			e := newAuthorityEnv(t, authorityOptions{agentTokenAlg: alg, password: cheapPassword})
			users := e.users(t, 2)
			rp := e.newRP(t)
			tokens := make([]string, len(users))
			for k, u := range users {
				res, err := login(rp, u, nil)
				if err != nil {
					t.Fatal(err)
				}
				tokens[k] = res.Token.AccessToken
				if k == 0 {
					at := res.Userinfo["_claim_sources"].(map[string]any)["src1"].(map[string]any)["access_token"].(string)
					sig, err := jose.ParseSigned(at, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
					if err != nil || string(sig.Signatures[0].Header.Algorithm) != alg {
						t.Fatalf("agent access token: %v, header %+v; want alg %s", err, sig, alg)
					}
					claims, err := rp.DistributedClaims(res.Userinfo)
					if err != nil || claims["email"] != e.agent.Claims[u.identifier]["email"] {
						t.Fatalf("distributed claims %v, %v", claims, err)
					}
				}
			}
			if _, err := login(rp, users[0], map[string]string{"prompt": "consent"}); err != nil {
				t.Fatal(err)
			}
			client := oidctest.HTTPClient(e.roots, false)
			defer client.CloseIdleConnections()
			per := rp.WithClient(client)
			err := parallel(2, 8, func(w, _ int) error {
				u, _, _, err := per.Userinfo(tokens[w])
				if err != nil {
					return err
				}
				return checkUserinfo(u)
			})
			if err != nil {
				t.Fatal(err)
			}
			// The figures say HTTP/2: keep them honest.
			if major, err := e.protocol(client); err != nil || major != 2 {
				t.Fatalf("clients speak HTTP/%d (%v), want HTTP/2", major, err)
			}
			if r, err := e.rawSignRate(alg, 4); err != nil || r <= 0 {
				t.Fatalf("raw signing: %v/s, %v", r, err)
			}
			if r := rawHashRate(cheapPassword, 2); r <= 0 {
				t.Fatalf("raw hashing: %v/s", r)
			}
			if _, _, _, err := per.Userinfo("not-a-token"); !errors.As(err, new(*oidctest.HTTPError)) {
				t.Fatalf("userinfo with a bad token: %v, want an HTTP error", err)
			}
		})
	}
}
