package server

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"unicode"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/id4me/id4me-registry/registry"
)

//go:generate go test -run TestREADMEListsReasons -update-readme .

var updateREADME = flag.Bool("update-readme", false, "rewrite the reasons list in README.md from the catalogue")

// Every catalogued reason has a code, and each reason comes back with that code and itself.
func TestReasonCodes(t *testing.T) {
	for _, in := range registry.Reasons() {
		code, ok := kindCodes[in.Kind]
		if !ok {
			t.Errorf("reason %s: kind %v has no gRPC code", in.Reason, in.Kind)
			continue
		}
		if got, reason := codeAndReason(statusError(in.Reason, "m")); got != code || reason != string(in.Reason) {
			t.Errorf("statusError(%s) = %v %s, want %v %s", in.Reason, got, reason, code, in.Reason)
		}
	}
	for code, r := range codeReasons {
		if got := kindCodes[r.Kind()]; got != code {
			t.Errorf("a bare %v status gets reason %s, whose code is %v", code, r, got)
		}
	}
}

// toStatus answers a registry error with its reason and the catalogue's code, and logs an
// error whose reason is not catalogued or has another kind in the catalogue.
func TestToStatusChecksTheCatalogue(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		code    codes.Code
		reason  string
		flagged bool
	}{
		{"catalogued", registry.NewError(registry.ReasonTransferPending, "pending"), codes.FailedPrecondition, "TRANSFER_PENDING", false},
		{"not catalogued", &registry.Error{Kind: registry.KindNotFound, Reason: "GONE_FISHING", Message: "gone"}, codes.NotFound, "GONE_FISHING", true},
		{"another kind", &registry.Error{Kind: registry.KindAlreadyExists, Reason: "TRANSFER_PENDING", Message: "pending"}, codes.FailedPrecondition, "TRANSFER_PENDING", true},
		{"no reason", &registry.Error{Kind: registry.KindInvalidArgument, Message: "bad"}, codes.InvalidArgument, "", true},
		{"internal", registry.NewError(registry.ReasonDatabaseError, "database error"), codes.Internal, "INTERNAL", false},
		{"internal with another kind", &registry.Error{Kind: registry.KindInternal, Reason: "TRANSFER_PENDING", Message: "secret"}, codes.Internal, "INTERNAL", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			err := toStatus(context.Background(), slog.New(slog.NewJSONHandler(&logs, nil)), tc.err)
			if code, reason := codeAndReason(err); code != tc.code || reason != tc.reason {
				t.Errorf("toStatus = %v %q, want %v %q", code, reason, tc.code, tc.reason)
			}
			if got := strings.Contains(logs.String(), uncataloguedReason); got != tc.flagged {
				t.Errorf("logged %q: %v, want %v; logs:\n%s", uncataloguedReason, got, tc.flagged, logs.String())
			}
		})
	}
}

// A status that comes without an ErrorInfo gets one; one of a code no reason stands for
// becomes INTERNAL.
func TestWithReason(t *testing.T) {
	for _, tc := range []struct {
		in     error
		code   codes.Code
		reason string
	}{
		{status.Error(codes.ResourceExhausted, "slow down"), codes.ResourceExhausted, "RATE_LIMITED"},
		{status.Error(codes.Unimplemented, "method X not implemented"), codes.Unimplemented, "UNIMPLEMENTED"},
		{status.Error(codes.Canceled, "context canceled"), codes.Canceled, "CANCELLED"},
		{status.Error(codes.OutOfRange, "out of range"), codes.Internal, "INTERNAL"},
		{statusError(registry.ReasonOverloaded, "busy"), codes.ResourceExhausted, "OVERLOADED"},
	} {
		var logs bytes.Buffer
		err := withReason(context.Background(), slog.New(slog.NewJSONHandler(&logs, nil)), tc.in)
		if code, reason := codeAndReason(err); code != tc.code || reason != tc.reason {
			t.Errorf("withReason(%v) = %v %q, want %v %q", tc.in, code, reason, tc.code, tc.reason)
		}
	}
}

func codeAndReason(err error) (codes.Code, string) {
	st := status.Convert(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return st.Code(), info.Reason
		}
	}
	return st.Code(), ""
}

// The reasons README "API" lists are the catalogue's. go generate ./server rewrites them.
func TestREADMEListsReasons(t *testing.T) {
	const begin, end = "<!-- reasons: generated from registry/reasons.go by go generate ./server -->\n", "<!-- end of reasons -->\n"
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i, j := strings.Index(readme, begin), strings.Index(readme, end)
	if i < 0 || j < i {
		t.Fatalf("README.md has no reasons list between %q and %q", begin, end)
	}
	want := reasonsTable()
	if got := readme[i+len(begin) : j]; got != want {
		if *updateREADME {
			if err := os.WriteFile("../README.md", []byte(readme[:i+len(begin)]+want+readme[j:]), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Errorf("README.md lists other reasons than registry/reasons.go; run go generate ./server. README:\n%s\ncatalogue:\n%s", got, want)
	}
}

// reasonsTable is the Markdown table of the catalogue: reason, gRPC code, description.
func reasonsTable() string {
	var b strings.Builder
	b.WriteString("| reason | code | when |\n| --- | --- | --- |\n")
	for _, in := range registry.Reasons() {
		fmt.Fprintf(&b, "| `%s` | `%s` | %s |\n", in.Reason, codeName(kindCodes[in.Kind]), in.Description)
	}
	return b.String()
}

// codeName returns the canonical name of a gRPC code: CANCELLED, FAILED_PRECONDITION, …
func codeName(c codes.Code) string {
	if c == codes.Canceled {
		return "CANCELLED"
	}
	var b strings.Builder
	for k, r := range c.String() {
		if k > 0 && unicode.IsUpper(r) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}
