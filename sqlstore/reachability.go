package sqlstore

import (
	"context"
	"database/sql/driver"
	"log/slog"
	"sync/atomic"
	"time"
)

// defaultConnectTimeout bounds a PostgreSQL connection attempt when the DSN sets no
// connect_timeout: while the server is gone a call should fail in seconds, not wait for the
// operating system's TCP timeout (minutes when packets are dropped).
const defaultConnectTimeout = 2 * time.Second

// reachability tells whether the database accepts connections, so that an outage is logged
// twice, when it begins and when it ends, rather than once per failed call. It watches new
// connections only: during an outage every call needs a new one (the pool drops broken
// connections), and the first that succeeds ends the outage.
type reachability struct {
	log  *slog.Logger
	down atomic.Bool
}

// connected records a connection made.
func (r *reachability) connected() {
	if r.down.CompareAndSwap(true, false) {
		r.log.Info("database reachable again")
	}
}

// failed records a connection attempt that failed with err. An attempt cut short by its
// caller's deadline or cancellation says nothing about the database.
func (r *reachability) failed(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	if r.down.CompareAndSwap(false, true) {
		r.log.Error("database unreachable: calls fail with UNAVAILABLE until it answers again", "err", err)
	}
}

// watchedConnector is a driver.Connector that reports each connection attempt to a
// reachability.
type watchedConnector struct {
	driver.Connector
	r *reachability
}

// Connect makes a connection with the wrapped connector and reports the outcome.
func (c watchedConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		c.r.failed(ctx, err)
		return nil, err
	}
	c.r.connected()
	return conn, nil
}
