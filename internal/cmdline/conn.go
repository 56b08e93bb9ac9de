package cmdline

import (
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/id4me/id4me-registry/internal/grpcconn"
)

// ConnFlags are the flags of every command that calls the registry's gRPC API (the agent's
// commands, admin operators …): where the registry is, how to reach it, the bearer credential.
type ConnFlags struct {
	Registry           string
	Token              string
	CAFile             string
	InsecureSkipVerify bool
	Plaintext          bool
	// JSON asks for machine-readable output.
	JSON bool
	// env names a flag's environment variable, for messages.
	env func(flagName string) string
}

// AddConnFlags defines the connection flags on fs; env names their environment variables and
// tokenWhat says what --token is.
func AddConnFlags(fs *flag.FlagSet, env func(string) string, tokenWhat string) *ConnFlags {
	f := &ConnFlags{env: env}
	fs.StringVar(&f.Registry, "registry", "127.0.0.1:9443", "the registry's gRPC address (host:port)")
	fs.StringVar(&f.Token, "token", "", tokenWhat+" (prefer the environment variable to the command line)")
	fs.StringVar(&f.CAFile, "ca-file", "", "CA certificates (PEM) to verify the registry's certificate with; default the system's")
	fs.BoolVar(&f.InsecureSkipVerify, "insecure-skip-verify", false, "accept any registry certificate (a --dev registry's self-signed one); development only")
	fs.BoolVar(&f.Plaintext, "plaintext", false, "gRPC without TLS, to a --dev registry on a loopback address")
	fs.BoolVar(&f.JSON, "json", false, "machine-readable output: one JSON object a line")
	return f
}

// Config returns the connection the flags describe.
func (f *ConnFlags) Config() (grpcconn.Config, error) {
	c := grpcconn.Config{Token: f.Token, InsecureSkipVerify: f.InsecureSkipVerify, Plaintext: f.Plaintext}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return c, fmt.Errorf("--ca-file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return c, fmt.Errorf("--ca-file %s: no PEM certificate found", f.CAFile)
		}
	}
	return c, nil
}

// NoCredential is the error of a command given no credential; alternatives are the other
// ways than --token to give one.
func (f *ConnFlags) NoCredential(alternatives ...string) error {
	return errors.New("no credential: set " + strings.Join(append([]string{fmt.Sprintf("--token (%s)", f.env("token"))}, alternatives...), ", or "))
}

// ConnHint makes an error of a call to the registry readable: a gRPC status is its message,
// its code and the reason the registry gave (what clients switch on), and a TLS handshake
// refused for an untrusted certificate says what to do about it.
func ConnHint(err error) error {
	if err == nil {
		return nil
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		what := st.Code().String()
		for _, d := range st.Details() {
			if info, ok := d.(*errdetails.ErrorInfo); ok && len(info.GetReason()) > 0 {
				what += ", " + info.GetReason()
			}
		}
		err = &statusError{msg: st.Message() + " (" + what + ")", err: err}
	}
	if msg := err.Error(); strings.Contains(msg, "x509:") || strings.Contains(msg, "tls: failed to verify") {
		return fmt.Errorf("%w\n(the registry's certificate is not trusted: give its CA with --ca-file, or, for a --dev registry's self-signed one, --insecure-skip-verify)", err)
	}
	return err
}

// statusError is a gRPC status error as ConnHint words it; errors.As and status.FromError
// still find the status.
type statusError struct {
	msg string
	err error
}

func (e *statusError) Error() string { return e.msg }
func (e *statusError) Unwrap() error { return e.err }
