package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"

	"github.com/id4me/id4me-registry/registry"
)

// SQLite extended result codes (https://www.sqlite.org/rescode.html).
const (
	sqliteBusy                 = 5
	sqliteConstraintForeignKey = 787
	sqliteConstraintPrimaryKey = 1555
	sqliteConstraintUnique     = 2067
)

// PostgreSQL SQLSTATE codes.
const (
	pgUniqueViolation      = "23505"
	pgForeignKeyViolation  = "23503"
	pgSerializationFailure = "40001"
	pgDeadlockDetected     = "40P01"
	// The server is going away or not there yet: an administrator's or a crash shutdown, a
	// server starting up or shutting down, or one out of connection slots.
	pgAdminShutdown      = "57P01"
	pgCrashShutdown      = "57P02"
	pgCannotConnectNow   = "57P03"
	pgTooManyConnections = "53300"
	// pgConnectionException is the class of the connection's own failures (08000, 08006, …).
	pgConnectionException = "08"
)

// dbError turns a database error into a *registry.Error, keeping it as the cause.
func dbError(err error) error {
	if err == nil {
		return nil
	}
	var re *registry.Error
	if errors.As(err, &re) {
		return err
	}
	var e *registry.Error
	switch {
	case isUnique(err):
		if onIdentifierName(err) {
			e = registry.NewError(registry.ReasonIdentifierTaken, "identifier is taken")
		} else {
			e = registry.NewError(registry.ReasonObjectExists, "object already exists")
		}
	case retryable(err):
		// Tx has given up running the transaction again.
		e = registry.NewError(registry.ReasonConcurrentUpdate, "transaction lost to a concurrent one")
	case isForeignKey(err):
		e = registry.NewError(registry.ReasonReferencedObjectNotFound, "a referenced object does not exist")
	case unavailable(err):
		e = registry.NewError(registry.ReasonDatabaseUnavailable, "the database is unreachable; try again shortly")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		e = registry.NewError(registry.ReasonDatabaseUnavailable, "database did not answer in time")
	default:
		e = registry.NewError(registry.ReasonDatabaseError, "database error")
	}
	e.Err = err
	return e
}

func internal(err error) error {
	e := registry.NewError(registry.ReasonDatabaseError, "store error")
	e.Err = err
	return e
}

func isUnique(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == pgUniqueViolation
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqliteConstraintUnique || se.Code() == sqliteConstraintPrimaryKey
	}
	return false
}

func isForeignKey(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == pgForeignKeyViolation
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqliteConstraintForeignKey
	}
	return false
}

// onIdentifierName reports whether a unique violation is on the identifier name or its DNS
// name.
func onIdentifierName(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.ConstraintName == "identifiers_pkey" || pe.ConstraintName == "identifiers_dns_name"
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return strings.Contains(se.Error(), "identifiers.name") || strings.Contains(se.Error(), "identifiers.dns_name")
	}
	return false
}

// retryable reports whether a transaction failed only because of a concurrent one and may
// succeed if run again.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == pgSerializationFailure || pe.Code == pgDeadlockDetected
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()&0xff == sqliteBusy
	}
	return false
}

// unavailable reports whether err says the database is out of reach rather than that the
// statement is wrong: the connection could not be made or broke (refused, reset, timed out,
// closed), or the server refuses work because it is shutting down or starting up. Running
// the call again later, against the same or a recovered server, may succeed.
func unavailable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case pgAdminShutdown, pgCrashShutdown, pgCannotConnectNow, pgTooManyConnections:
			return true
		}
		return strings.HasPrefix(pe.Code, pgConnectionException)
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	// The caller's deadline or cancellation, which context.DeadlineExceeded, a net.Error
	// itself, would otherwise pass for a network failure.
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) ||
		errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

func notFound(reason registry.Reason, format string, args ...any) error {
	return registry.NewError(reason, format, args...)
}

func concurrentUpdate(format string, args ...any) error {
	return registry.NewError(registry.ReasonConcurrentUpdate, format, args...)
}
