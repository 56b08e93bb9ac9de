package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"go.yaml.in/yaml/v3"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver of --sqlite

	"github.com/id4me/id4me-registry/agent/accesstoken"
	"github.com/id4me/id4me-registry/agent/claims"
	"github.com/id4me/id4me-registry/internal/cmdline"
	"github.com/id4me/id4me-registry/internal/publicaddr"
	"github.com/id4me/id4me-registry/server"
)

// claimsServe lives in id4me-registry, not in id4me-agent: its SQLite source links the
// database driver, which the agent's lean program must not (internal/layering).

// claimsServeSummary is the first line of claims-serve's help.
const claimsServeSummary = "Serve an agent's claims endpoint (agent/claims) over HTTPS: --authority URL and --claims-file FILE or --sqlite FILE."

// claimsServeNotes end claims-serve's help.
const claimsServeNotes = `A reference claims endpoint for an agent (agent/claims): it verifies the access tokens the
authority at --authority gives relying parties for this agent, and answers the holder's claims
the token lists as a JWT signed with the agent's keys (JSON when asked for application/json).
It serves, under its issuer:
  /claims                             the claims endpoint: register the agent with it
  /jwks.json                          the agent's public keys
  /.well-known/openid-configuration   the agent's discovery (issuer, jwks_uri)

Claims come from a YAML or JSON file (reloaded when it changes), identifier to claims:
  alice.example.org:
    email: alice@example.org
    name: Alice
or from a SQLite table of (identifier, name, value) rows, value a JSON value or plain text.
`

// claimsServeEnv is a flag's environment variable: --authority is ID4ME_CLAIMS_AUTHORITY.
var claimsServeEnv = cmdline.EnvName("ID4ME_CLAIMS_")

type claimsServeFlags struct {
	addr, issuer, authority, authorityCA string
	claimsFile, sqlite, sqliteTable      string
	keyFile, alg                         string
	rotateEvery, lifetime                time.Duration
	tlsCert, tlsKey, devCertFile         string
	dev, replayCheck, authorityInsecure  bool
	logLevel                             string
}

func claimsServeFlagSet(stdout io.Writer) (*cmdline.Flags, *claimsServeFlags) {
	fs := cmdline.NewFlags("id4me-registry agent claims-serve", claimsServeSummary, claimsServeEnv, stdout)
	fs.Notes = claimsServeNotes
	f := &claimsServeFlags{}
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8444", "HTTPS listen address")
	fs.StringVar(&f.issuer, "issuer", "", "the agent's issuer (https URL), as the agent is registered; default https://ADDR")
	fs.StringVar(&f.authority, "authority", "", "the authority's issuer (https URL) whose access tokens to accept")
	fs.StringVar(&f.authorityCA, "authority-ca-file", "", "CA certificates (PEM) to verify the authority's certificate with; default the system's")
	fs.BoolVar(&f.authorityInsecure, "authority-insecure-skip-verify", false, "under --dev, accept any certificate of an authority on loopback (a serve --dev authority's self-signed one)")
	fs.StringVar(&f.claimsFile, "claims-file", "", "YAML or JSON file of the holders' claims by identifier; reloaded when it changes")
	fs.StringVar(&f.sqlite, "sqlite", "", "SQLite database holding the claims (opened read-only)")
	fs.StringVar(&f.sqliteTable, "sqlite-table", "claims", "the table of (identifier, name, value) rows in --sqlite")
	fs.StringVar(&f.keyFile, "key-file", "", "file of the agent's signing keys, created when missing (mode 0600); default keys in memory, new at each start")
	fs.StringVar(&f.alg, "alg", "RS256", "algorithm of new signing keys: RS256 or ES256")
	fs.DurationVar(&f.rotateEvery, "rotate-every", claims.DefaultRotateEvery, "how long a signing key signs; the next one is published an hour ahead, the old one stays published for a day")
	fs.DurationVar(&f.lifetime, "lifetime", claims.DefaultLifetime, "how long an answer is valid")
	fs.BoolVar(&f.replayCheck, "replay-check", false, "answer each access token once (refuse a jti seen before, until it expires)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate (chain) of the HTTPS listener")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.BoolVar(&f.dev, "dev", false, "development mode: a self-signed certificate for localhost and loopback, listening on loopback only")
	fs.StringVar(&f.devCertFile, "dev-cert-file", "", "under --dev, write the self-signed certificate (PEM) here, for relying parties to trust")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	return fs, f
}

func claimsServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := claimsServeFlagSet(stdout)
	if _, err := fs.Parse(args); err != nil {
		return err
	}
	log, err := newLogger(stderr, f.logLevel, "text")
	if err != nil {
		return err
	}
	if f.authority == "" {
		return errors.New("--authority is required: the authority's issuer URL")
	}
	authorityURL, err := url.Parse(f.authority)
	if err != nil || authorityURL.Scheme != "https" || authorityURL.Host == "" {
		return fmt.Errorf("--authority %q: the authority's issuer is an https URL", f.authority)
	}
	if f.authorityInsecure && !(f.dev && publicaddr.IsLoopbackHost(authorityURL.Hostname())) {
		return errors.New("--authority-insecure-skip-verify goes with --dev and an authority on loopback")
	}
	if (f.claimsFile == "") == (f.sqlite == "") {
		return errors.New("give exactly one of --claims-file and --sqlite")
	}
	cert, err := claimsServeCertificate(f)
	if err != nil {
		return err
	}
	authorityClient, err := httpsClient(f.authorityCA, f.authorityInsecure)
	if err != nil {
		return err
	}
	src, stopSource, err := claimsSource(ctx, f, log)
	if err != nil {
		return err
	}
	defer stopSource()

	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("listener: %w", err)
	}
	defer ln.Close()
	issuer := f.issuer
	if issuer == "" {
		issuer = "https://" + ln.Addr().String()
	}
	keyOpts := claims.KeySetOptions{Algorithm: jose.SignatureAlgorithm(f.alg), RotateEvery: f.rotateEvery}
	var keys *claims.KeySet
	if f.keyFile != "" {
		keys, err = claims.OpenKeySet(f.keyFile, keyOpts)
	} else {
		keys, err = claims.NewKeySet(keyOpts)
		if err == nil && !f.dev {
			log.Warn("no --key-file: the signing keys live in memory, and a restart makes relying parties see new ones")
		}
	}
	if err != nil {
		return err
	}
	var vopts []accesstoken.Option
	if f.replayCheck {
		vopts = append(vopts, accesstoken.WithReplayCheck())
	}
	srv, err := claims.NewServer(claims.Config{
		Issuer:   issuer,
		Verifier: accesstoken.NewLazy(authorityClient, f.authority, issuer, vopts...),
		Source:   src, Keys: keys, Lifetime: f.lifetime, Logger: log,
	})
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           srv,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	fmt.Fprintf(stdout, "claims-serve: issuer %s\n", issuer)
	fmt.Fprintf(stdout, "claims-serve: claims endpoint %s\n", srv.ClaimsEndpoint)
	fmt.Fprintf(stdout, "claims-serve: JWKS %s\n", srv.JWKSURI)
	return serveTLSUntilDone(ctx, hs, ln)
}

// serveTLSUntilDone serves HTTPS on ln (hs.TLSConfig holds the certificate) until it fails or
// ctx ends; then it shuts hs down, leaving requests under way five seconds to finish.
func serveTLSUntilDone(ctx context.Context, hs *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- hs.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return hs.Shutdown(shutdown)
}

// claimsServeCertificate is the listener's certificate: --tls-cert and --tls-key, or a
// self-signed one under --dev.
func claimsServeCertificate(f *claimsServeFlags) (tls.Certificate, error) {
	switch {
	case f.tlsCert != "" && f.tlsKey != "":
		c, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			return c, fmt.Errorf("tls: %w", err)
		}
		return c, nil
	case f.tlsCert != "" || f.tlsKey != "":
		return tls.Certificate{}, errors.New("--tls-cert and --tls-key go together")
	case !f.dev:
		return tls.Certificate{}, errors.New("give --tls-cert and --tls-key, or --dev for a self-signed certificate")
	}
	if !isLoopbackListen(f.addr) {
		return tls.Certificate{}, errors.New("--dev listens on loopback addresses only")
	}
	c, _, err := server.DevCertificate()
	if err != nil {
		return c, err
	}
	if f.devCertFile != "" {
		p := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]})
		if err := os.WriteFile(f.devCertFile, p, 0o644); err != nil {
			return c, fmt.Errorf("--dev-cert-file: %w", err)
		}
	}
	return c, nil
}

// httpsClient is an HTTP client that trusts the certificates of caFile (the system's when
// empty), or any certificate when insecure.
func httpsClient(caFile string, insecure bool) (*http.Client, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if insecure {
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
	}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--authority-ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("--authority-ca-file %s: no PEM certificate found", caFile)
		}
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: t, Timeout: 10 * time.Second}, nil
}

// claimsSource opens the source the flags name; stop releases it.
func claimsSource(ctx context.Context, f *claimsServeFlags, log *slog.Logger) (claims.Source, func(), error) {
	if f.sqlite != "" {
		s, err := openSQLiteClaims(f.sqlite, f.sqliteTable)
		if err != nil {
			return nil, nil, err
		}
		return s, func() { s.db.Close() }, nil
	}
	fsrc := &fileClaims{path: f.claimsFile}
	if err := fsrc.load(); err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	go fsrc.watch(ctx, time.Second, log)
	return fsrc, cancel, nil
}

// fileClaims is a Source read from a YAML or JSON file, read again when its modification
// time or size changes.
type fileClaims struct {
	path  string
	cur   atomic.Pointer[claims.Static]
	mtime time.Time
	size  int64
}

// load reads the file; on an error the claims read before stay.
func (s *fileClaims) load() error {
	st, err := os.Stat(s.path)
	if err != nil {
		return fmt.Errorf("--claims-file: %w", err)
	}
	b, err := os.ReadFile(s.path)
	if err != nil {
		return fmt.Errorf("--claims-file: %w", err)
	}
	var m map[string]map[string]any
	if strings.EqualFold(filepath.Ext(s.path), ".json") {
		err = json.Unmarshal(b, &m)
	} else {
		err = yaml.Unmarshal(b, &m)
	}
	if err != nil {
		return fmt.Errorf("--claims-file %s: %w", s.path, err)
	}
	st2 := claims.Static(m)
	s.cur.Store(&st2)
	s.mtime, s.size = st.ModTime(), st.Size()
	return nil
}

// watch reloads the file when it changes, every interval until ctx ends.
func (s *fileClaims) watch(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := os.Stat(s.path)
		if err != nil || (st.ModTime().Equal(s.mtime) && st.Size() == s.size) {
			continue
		}
		if err := s.load(); err != nil {
			log.Error("claims-serve: keeping the claims read before", "err", err)
			continue
		}
		log.Info("claims-serve: claims file reloaded", "path", s.path, "identifiers", len(*s.cur.Load()))
	}
}

// Claims answers from the file as last read.
func (s *fileClaims) Claims(ctx context.Context, identifier string, names []string) (map[string]any, error) {
	return s.cur.Load().Claims(ctx, identifier, names)
}

// sqliteClaims is a Source read from a SQLite table of (identifier, name, value) rows.
type sqliteClaims struct {
	db    *sql.DB
	query string
}

var sqlName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// openSQLiteClaims opens path read-only and checks that table has the columns it reads.
func openSQLiteClaims(path, table string) (*sqliteClaims, error) {
	if !sqlName.MatchString(table) {
		return nil, fmt.Errorf("--sqlite-table %q is not a plain SQL name", table)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("--sqlite: %w", err)
	}
	dsn := (&url.URL{Scheme: "file", Opaque: path, RawQuery: "mode=ro&_pragma=busy_timeout(5000)"}).String()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("--sqlite: %w", err)
	}
	s := &sqliteClaims{db: db, query: `SELECT name, value FROM "` + table + `" WHERE identifier = ? COLLATE NOCASE`}
	rows, err := db.Query(`SELECT identifier, name, value FROM "` + table + `" LIMIT 0`)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("--sqlite %s: want a table %s of (identifier, name, value): %w", path, table, err)
	}
	rows.Close()
	return s, nil
}

// Claims reads the rows of identifier; an identifier without rows is unknown.
func (s *sqliteClaims) Claims(ctx context.Context, identifier string, names []string) (map[string]any, error) {
	rows, err := s.db.QueryContext(ctx, s.query, strings.TrimSuffix(identifier, "."))
	if err != nil {
		return nil, fmt.Errorf("claims-serve: sqlite: %w", err)
	}
	defer rows.Close()
	held := map[string]any{}
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			return nil, fmt.Errorf("claims-serve: sqlite: %w", err)
		}
		var v any
		if json.Unmarshal([]byte(value), &v) != nil {
			v = value
		}
		held[name] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claims-serve: sqlite: %w", err)
	}
	if len(held) == 0 {
		return nil, claims.ErrUnknownIdentifier
	}
	return claims.Static{identifier: held}.Claims(ctx, identifier, names)
}
