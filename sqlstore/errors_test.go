package sqlstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/id4me/id4me-registry/registry"
)

// TestDatabaseOutageErrorsAreUnavailable: every way PostgreSQL can be out of reach is
// KindUnavailable with reason DATABASE_UNAVAILABLE, so callers learn to retry; a statement
// the database refuses is not.
func TestDatabaseOutageErrorsAreUnavailable(t *testing.T) {
	ctx := context.Background()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nobody listens there now: connections are refused
	_, refused := pgconn.Connect(ctx, "postgres://postgres@"+addr+"/x?sslmode=disable&connect_timeout=2")
	if refused == nil {
		t.Fatal("connected to a closed port")
	}
	for _, tc := range []struct {
		name string
		err  error
		want registry.Kind
	}{
		{"connection refused", refused, registry.KindUnavailable},
		{"admin shutdown 57P01", &pgconn.PgError{Code: "57P01"}, registry.KindUnavailable},
		{"crash shutdown 57P02", &pgconn.PgError{Code: "57P02"}, registry.KindUnavailable},
		{"cannot connect now 57P03", &pgconn.PgError{Code: "57P03"}, registry.KindUnavailable},
		{"connection failure 08006", &pgconn.PgError{Code: "08006"}, registry.KindUnavailable},
		{"connection exception 08000", &pgconn.PgError{Code: "08000"}, registry.KindUnavailable},
		{"too many connections 53300", &pgconn.PgError{Code: "53300"}, registry.KindUnavailable},
		{"connection reset", fmt.Errorf("read: %w", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}), registry.KindUnavailable},
		{"bad connection", driver.ErrBadConn, registry.KindUnavailable},
		{"unexpected EOF", fmt.Errorf("receive message failed: %w", io.ErrUnexpectedEOF), registry.KindUnavailable},
		{"caller's deadline", fmt.Errorf("timeout: %w", context.DeadlineExceeded), registry.KindUnavailable},
		{"unique violation", &pgconn.PgError{Code: "23505"}, registry.KindAlreadyExists},
		{"syntax error", &pgconn.PgError{Code: "42601"}, registry.KindInternal},
		{"statement timeout", &pgconn.PgError{Code: "57014"}, registry.KindInternal},
		{"something else", errors.New("boom"), registry.KindInternal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := dbError(tc.err)
			if k := registry.KindOf(err); k != tc.want {
				t.Fatalf("dbError(%v) is %v, want %v", tc.err, k, tc.want)
			}
			if tc.want == registry.KindUnavailable && registry.ReasonOf(err) != registry.ReasonDatabaseUnavailable {
				t.Fatalf("dbError(%v) has reason %s, want %s", tc.err, registry.ReasonOf(err), registry.ReasonDatabaseUnavailable)
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("dbError(%v) lost its cause", tc.err)
			}
		})
	}
}
