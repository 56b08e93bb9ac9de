// Package agent is the Go client for agent partners of the registry: a typed client over the
// RegistryService with the agent's credentials (an API token, an mTLS client certificate, or
// both), and Register and Transfer, which solve the dns-01 challenge through any lego DNS
// provider in one call: create the challenge, publish its TXT record with the provider, wait
// until every authoritative nameserver serves it, have the registry verify it, register or
// request the transfer, and remove the record again whatever happened.
//
//	c, err := agent.Dial("registry.example:9443", agent.WithToken(os.Getenv("ID4ME_AGENT_TOKEN")))
//	provider, err := rfc2136.NewDNSProvider() // configured by lego's RFC2136_* variables
//	res, err := c.Register(ctx, "alice.example", provider)
package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/id4me/id4me-registry/internal/grpcconn"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

// Option configures a Client made by Dial.
type Option func(*options) error

type options struct {
	token          string
	certs          []tls.Certificate
	roots          *x509.CertPool
	skipVerify     bool
	plaintext      bool
	dnsServers     []string
	propTimeout    time.Duration
	pollInterval   time.Duration
	progress       func(Progress)
	grpcDialOption []grpc.DialOption
}

// WithToken authenticates every call with the agent's API token ("authorization: Bearer").
func WithToken(token string) Option {
	return func(o *options) error {
		if strings.TrimSpace(token) == "" {
			return errors.New("agent: the token is empty")
		}
		o.token = token
		return nil
	}
}

// WithClientCertificate presents cert in the TLS handshake; the registry authenticates the
// agent by the certificate's pinned public key (mTLS).
func WithClientCertificate(cert tls.Certificate) Option {
	return func(o *options) error {
		o.certs = append(o.certs, cert)
		return nil
	}
}

// WithRootCAs verifies the registry's certificate against pool instead of the system roots.
func WithRootCAs(pool *x509.CertPool) Option {
	return func(o *options) error {
		o.roots = pool
		return nil
	}
}

// WithInsecureSkipVerify accepts any server certificate, such as the self-signed one of a
// registry started with --dev. The connection is encrypted but the registry unauthenticated:
// for development only.
func WithInsecureSkipVerify() Option {
	return func(o *options) error {
		o.skipVerify = true
		return nil
	}
}

// WithPlaintext speaks gRPC without TLS, which a registry in --dev mode accepts from loopback.
// Dial refuses it for any address but a loopback one, so a token never crosses a network in
// clear.
func WithPlaintext() Option {
	return func(o *options) error {
		o.plaintext = true
		return nil
	}
}

// WithDNSServers pins the nameservers (host:port) asked while waiting for the challenge record:
// they are taken as the authoritative servers of every zone, as the registry's --dns-server
// does. Without it each zone's nameservers are found through the system resolver and asked
// directly.
func WithDNSServers(addrs ...string) Option {
	return func(o *options) error {
		for _, a := range addrs {
			if _, _, err := net.SplitHostPort(a); err != nil {
				return fmt.Errorf("agent: DNS server %q is not host:port: %w", a, err)
			}
		}
		o.dnsServers = append(o.dnsServers, addrs...)
		return nil
	}
}

// WithPropagation bounds the wait for the nameservers to timeout and polls them every
// interval, instead of what the provider asks for (challenge.ProviderTimeout, lego's
// *_PROPAGATION_TIMEOUT and *_POLLING_INTERVAL) or lego's defaults (60s, every 2s). A zero
// value keeps the provider's.
func WithPropagation(timeout, interval time.Duration) Option {
	return func(o *options) error {
		if timeout < 0 || interval < 0 {
			return errors.New("agent: propagation timeout and interval must not be negative")
		}
		o.propTimeout, o.pollInterval = timeout, interval
		return nil
	}
}

// WithProgress calls fn as Register and Transfer go from step to step, and after each look at
// the nameservers while waiting. fn is called from the goroutine that called Register or
// Transfer.
func WithProgress(fn func(Progress)) Option {
	return func(o *options) error {
		o.progress = fn
		return nil
	}
}

// WithGRPCDialOptions adds options to the gRPC connection (interceptors, keepalive, …).
func WithGRPCDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) error {
		o.grpcDialOption = append(o.grpcDialOption, opts...)
		return nil
	}
}

// Client is an agent's connection to the registry. It is safe for concurrent use.
type Client struct {
	conn *grpc.ClientConn
	rpc  registryv1.RegistryServiceClient
	opts options
}

// Dial returns a Client for the registry at target (host:port). The connection is made on the
// first call. TLS is used unless WithPlaintext is given; some credential, WithToken or
// WithClientCertificate, is required.
func Dial(target string, opts ...Option) (*Client, error) {
	var o options
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.token == "" && len(o.certs) == 0 {
		return nil, errors.New("agent: no credential: give a token or a client certificate")
	}
	conn, err := grpcconn.Dial(target, grpcconn.Config{
		Token: o.token, Certificates: o.certs, RootCAs: o.roots, InsecureSkipVerify: o.skipVerify,
		Plaintext: o.plaintext, DialOptions: o.grpcDialOption,
	})
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	return &Client{conn: conn, rpc: registryv1.NewRegistryServiceClient(conn), opts: o}, nil
}

// Close closes the connection.
func (c *Client) Close() error {
	return c.conn.Close()
}

// RegistryService returns the generated client on the same connection and credentials, for
// the calls this package has no method for.
func (c *Client) RegistryService() registryv1.RegistryServiceClient {
	return c.rpc
}

// Identifier returns an identifier the agent sponsors.
func (c *Client) Identifier(ctx context.Context, name string) (*registryv1.Identifier, error) {
	return c.rpc.GetIdentifier(ctx, &registryv1.GetIdentifierRequest{Identifier: name})
}

// Identifiers yields every identifier the agent sponsors, by name, fetching pages as it goes.
// It stops at the first error, which it yields.
func (c *Client) Identifiers(ctx context.Context) iter.Seq2[*registryv1.Identifier, error] {
	return func(yield func(*registryv1.Identifier, error) bool) {
		for token := ""; ; {
			page, err := c.rpc.ListIdentifiers(ctx, &registryv1.ListIdentifiersRequest{PageToken: token})
			if err != nil {
				yield(nil, err)
				return
			}
			for _, i := range page.Identifiers {
				if !yield(i, nil) {
					return
				}
			}
			if token = page.NextPageToken; token == "" {
				return
			}
		}
	}
}

// Delete deletes an identifier: it becomes pending delete for the registry's redemption period.
func (c *Client) Delete(ctx context.Context, name string) (*registryv1.Identifier, error) {
	return c.rpc.DeleteIdentifier(ctx, &registryv1.DeleteIdentifierRequest{Identifier: name})
}

// AckEvents acknowledges events and returns how many were not acknowledged before.
func (c *Client) AckEvents(ctx context.Context, ids ...int64) (int32, error) {
	resp, err := c.rpc.AckEvents(ctx, &registryv1.AckEventsRequest{EventIds: ids})
	if err != nil {
		return 0, err
	}
	return resp.AcknowledgedCount, nil
}

// Reconnection pauses of WatchEvents after the stream broke.
const (
	minReconnectPause = 200 * time.Millisecond
	maxReconnectPause = 10 * time.Second
)

// WatchEvents calls fn with the agent's events as they happen, oldest first: those after
// afterID, or with afterID 0 from the oldest unacknowledged one. When the stream ends with
// UNAVAILABLE (a registry instance shutting down, a broken connection) it connects again with
// the id of the last event received, after a pause that grows while attempts keep failing, so
// no event is missed or seen twice. It returns when ctx ends, fn returns an error, or the
// registry refuses the stream (a revoked token, a suspended agent).
func (c *Client) WatchEvents(ctx context.Context, afterID int64, fn func(*registryv1.Event) error) error {
	pause := minReconnectPause
	for {
		from := afterID
		stopped, err := c.watchOnce(ctx, &afterID, fn)
		if stopped != nil {
			return stopped
		}
		if afterID != from {
			pause = minReconnectPause
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// A stream ends only when the registry goes away; reconnect to it or another instance.
		if !errors.Is(err, io.EOF) && status.Code(err) != codes.Unavailable {
			return err
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		pause = min(2*pause, maxReconnectPause)
	}
}

// watchOnce reads one event stream until it breaks (err) or fn returns an error (stopped),
// keeping afterID at the last event received.
func (c *Client) watchOnce(ctx context.Context, afterID *int64, fn func(*registryv1.Event) error) (stopped, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream when fn stops the watch
	stream, err := c.rpc.WatchEvents(ctx, &registryv1.WatchEventsRequest{AfterId: *afterID})
	if err != nil {
		return nil, err
	}
	for {
		ev, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		*afterID = ev.Id
		if err := fn(ev); err != nil {
			return err, nil
		}
	}
}
