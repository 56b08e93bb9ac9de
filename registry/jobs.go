package registry

import (
	"context"
	"log/slog"
	"time"
)

// Background work. Each sweep handles the items due now, in batches, each batch one
// transaction that claims its items (see the Tx.Claim* methods), so several instances
// sharing one database share the work and handle every item exactly once; an item's state
// is in the store, so a restart loses nothing.

// SweepChallenges deletes challenges that expired more than Config.ChallengeRetention ago
// and returns how many.
func (s *Service) SweepChallenges(ctx context.Context) (int, error) { return 0, nil }

// SweepTransfers approves the pending transfers whose deadline passed and returns how many.
func (s *Service) SweepTransfers(ctx context.Context) (int, error) { return 0, nil }

// SweepPurges purges the identifiers whose redemption period ended and returns how many.
func (s *Service) SweepPurges(ctx context.Context) (int, error) { return 0, nil }

// SweepOpenID checks the _openid records of the identifiers due for a check, stores the
// outcomes and announces changes to the sponsoring agents; it returns how many it checked.
func (s *Service) SweepOpenID(ctx context.Context) (int, error) { return 0, nil }

// WorkerConfig configures RunWorker.
type WorkerConfig struct {
	// Interval is the time between two rounds of sweeps. Default 10s.
	Interval time.Duration
	Logger   *slog.Logger
	// Observe, if set, is told the outcome of every sweep (for metrics).
	Observe func(job string, n int, took time.Duration, err error)
}

// RunWorker runs every sweep once per interval until ctx ends. Rounds start at a random
// offset within the interval, so instances started together spread out.
func (s *Service) RunWorker(ctx context.Context, cfg WorkerConfig) {}
