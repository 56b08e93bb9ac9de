// Package grpcconn dials the registry's gRPC API for its clients, the agent toolkit and the
// operator CLI alike: TLS unless plaintext is asked for, which is allowed to loopback
// addresses only, a bearer credential sent with every call, never in clear across a
// network, and calls the server shed for overload sent again after the wait it asks for.
package grpcconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/id4me/id4me-registry/internal/publicaddr"
)

// Config says how to reach the registry and what to authenticate with.
type Config struct {
	// Token is sent as "authorization: Bearer <Token>" with every call, if set.
	Token string
	// Certificates are presented in the TLS handshake (an agent's mTLS).
	Certificates []tls.Certificate
	// RootCAs verify the registry's certificate; nil means the system's.
	RootCAs *x509.CertPool
	// InsecureSkipVerify accepts any registry certificate (a --dev registry's self-signed one).
	InsecureSkipVerify bool
	// Plaintext speaks gRPC without TLS, to a loopback address only.
	Plaintext bool
	// DialOptions are added to the connection's (interceptors, keepalive, …).
	DialOptions []grpc.DialOption
}

// Dial returns a connection to the registry at target (host:port), made on the first call.
func Dial(target string, c Config) (*grpc.ClientConn, error) {
	var creds credentials.TransportCredentials
	if c.Plaintext {
		if !IsLoopbackTarget(target) {
			return nil, fmt.Errorf("plaintext is allowed to loopback addresses only, not %q: use TLS", target)
		}
		if len(c.Certificates) > 0 {
			return nil, errors.New("a client certificate needs TLS; drop the plaintext option")
		}
		creds = insecure.NewCredentials()
	} else {
		creds = credentials.NewTLS(&tls.Config{
			MinVersion: tls.VersionTLS12, Certificates: c.Certificates, RootCAs: c.RootCAs,
			InsecureSkipVerify: c.InsecureSkipVerify, // asked for explicitly, for dev registries
		})
	}
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(creds), grpc.WithChainUnaryInterceptor(retryShed)}, c.DialOptions...)
	if c.Token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer{token: c.Token, secure: !c.Plaintext}))
	}
	return grpc.NewClient(target, opts...)
}

// Shed calls (RESOURCE_EXHAUSTED, reason OVERLOADED: the server's bound for the call's class
// was full) are refused before the server does anything, so they are safe to send again,
// whatever they ask. They are, after the RetryInfo's delay, up to shedRetries times.
const (
	shedRetries     = 3
	maxShedDelay    = 5 * time.Second
	overloadedLabel = "OVERLOADED"
)

// retryShed sends a unary call again when the server shed it, waiting as it asks.
func retryShed(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	for attempt := 0; ; attempt++ {
		err := invoker(ctx, method, req, reply, cc, opts...)
		delay, shed := shedDelay(err)
		if !shed || attempt == shedRetries {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// shedDelay reports whether err is a shed call, and how long it asks the client to wait.
func shedDelay(err error) (time.Duration, bool) {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.ResourceExhausted {
		return 0, false
	}
	shed, delay := false, 100*time.Millisecond
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			shed = d.GetReason() == overloadedLabel
		case *errdetails.RetryInfo:
			delay = d.GetRetryDelay().AsDuration()
		}
	}
	return min(max(delay, 0), maxShedDelay), shed
}

// bearer sends the token with every call.
type bearer struct {
	token  string
	secure bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (b bearer) RequireTransportSecurity() bool { return b.secure }

// IsLoopbackTarget reports whether a gRPC target names a loopback address or localhost.
func IsLoopbackTarget(target string) bool {
	host, _, err := net.SplitHostPort(strings.TrimPrefix(target, "dns:///"))
	return err == nil && publicaddr.IsLoopbackHost(host)
}
