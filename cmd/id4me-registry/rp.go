package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/id4me/id4me-registry/internal/cmdline"
	"github.com/id4me/id4me-registry/internal/publicaddr"
	"github.com/id4me/id4me-registry/rpdebug"
	"github.com/id4me/id4me-registry/server"
)

// rpEnv is an rp flag's environment variable: --addr is ID4ME_RP_ADDR, apart from serve's
// variables (--dns-server, --tls-cert).
var rpEnv = cmdline.EnvName("ID4ME_RP_")

// rpNotes end rp's help.
const rpNotes = `Open the page, type an identifier: the RP looks up its _openid record, discovers the
authority, registers (or reuses its registration), and logs in with the claims parameter.
The result page shows the ID token, userinfo and the agent's answer, decoded, verified and
raw, and every HTTP request and response in order. For integrators and demos; not an RP to
put in front of users.
`

// rpCommand serves the debugging relying party: a page where an integrator types an
// identifier and watches the whole ID4me login, every token and every HTTP exchange.
func rpCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagsEnv(ctx, stdout, rpEnv)
	fs.Notes = rpNotes
	addr := fs.String("addr", "127.0.0.1:8445", "HTTPS listen address")
	baseURL := fs.String("url", "", "the RP's URL as browsers reach it (its redirect URI is this + /callback); default https://<addr>")
	dnsServer := fs.String("dns-server", "", "DNS server (host:port) to look up _openid records at; default the system's resolver")
	caFile := fs.String("ca-file", "", "PEM file of certificates to trust, besides the system's, for the authority and the agents")
	insecure := fs.Bool("insecure-skip-verify", false, "do not verify the authority's and the agents' certificates (development only)")
	tlsCert := fs.String("tls-cert", "", "PEM certificate of the RP's HTTPS; default a self-signed one for loopback")
	tlsKey := fs.String("tls-key", "", "PEM key of --tls-cert")
	allowPrivate := fs.Bool("allow-private-addresses", false, "served beyond loopback, still fetch from loopback and private addresses (the RP fetches what identifiers' records and authorities name, and shows the answers); on loopback they are allowed")
	regFile := fs.String("registrations", "", "JSON file keeping the clients registered, by issuer, across restarts (holds client secrets); default memory")
	if _, err := fs.Parse(args); err != nil {
		return err
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return fs.SeeHelp(errors.New("--tls-cert and --tls-key go together"))
	}
	var cert tls.Certificate
	var err error
	if *tlsCert != "" {
		cert, err = tls.LoadX509KeyPair(*tlsCert, *tlsKey)
	} else {
		if !isLoopbackListen(*addr) {
			return errors.New("the self-signed certificate is for loopback: listen on loopback, or give --tls-cert and --tls-key")
		}
		cert, _, err = server.DevCertificate()
	}
	if err != nil {
		return fmt.Errorf("the RP's certificate: %w", err)
	}
	clientTLS, err := rpClientTLS(*caFile, *insecure)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	if *baseURL == "" {
		*baseURL = "https://" + l.Addr().String()
	}
	cfg := rpdebug.Config{
		BaseURL:           *baseURL,
		Transport:         rpTransport(clientTLS, *allowPrivate || isLoopbackListen(*addr)),
		RegistrationsFile: *regFile,
		Logger:            slog.New(slog.NewTextHandler(stderr, nil)),
	}
	if *dnsServer != "" {
		cfg.DNS = rpdebug.DNSServer{Addr: *dnsServer}
	}
	rp, err := rpdebug.New(cfg)
	if err != nil {
		l.Close()
		return err
	}
	srv := &http.Server{
		Handler:           rp.Handler(),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	fmt.Fprintf(stdout, "rp: open %s/ in a browser (redirect URI %s)\n", *baseURL, rp.RedirectURI())
	return serveTLSUntilDone(ctx, srv, l)
}

// rpTransport is the RP's client of authorities and agents. The URLs it fetches come from
// DNS records, discovery documents and userinfo answers that anyone can write, and the page
// shows what they answer: served beyond loopback, it connects to public addresses only
// (checked once the name is resolved, with no proxy in between), unless allowPrivate.
func rpTransport(clientTLS *tls.Config, allowPrivate bool) *http.Transport {
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	t := &http.Transport{TLSClientConfig: clientTLS, Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true, DialContext: dialer.DialContext}
	if !allowPrivate {
		t.Proxy = nil
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("unexpected address %q: %w", address, err)
			}
			if r, bad := publicaddr.NonPublic(ap.Addr()); bad {
				return fmt.Errorf("%s is not a public address (%s): the RP is served beyond loopback (--allow-private-addresses allows it)", ap.Addr().Unmap(), r.What)
			}
			return nil
		}
	}
	return t
}

// rpClientTLS is how the RP checks the authority's and the agents' certificates.
func rpClientTLS(caFile string, insecure bool) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure}
	if caFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--ca-file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--ca-file %s holds no PEM certificate", caFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}
