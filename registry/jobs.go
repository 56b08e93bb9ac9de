package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/id4me/id4me-registry/dnsverify"
)

// Background work. Each sweep handles the items due now in batches, each batch one
// transaction that claims its items (the Tx.Claim* methods: row locks with SKIP LOCKED on
// PostgreSQL), so several instances sharing one database share the work and handle every item
// exactly once; every item's state is in the store, so a restart loses nothing.

const (
	// sweepBatch is how many items one transaction of a sweep claims.
	sweepBatch = 100
	// deleteBatch is how many expired challenges or old acknowledged events one statement
	// deletes.
	deleteBatch = 1000
	// maxSweepBatches bounds one sweep, so that one job cannot starve the others.
	maxSweepBatches = 100
	// firstOpenIDCheck is how soon after a registration or transfer the _openid record is
	// checked (at most the check interval): the agent publishes it around that time.
	firstOpenIDCheck = 10 * time.Minute
	// openIDLease is how long a claimed _openid check is reserved for the instance that
	// claimed it; if that instance dies, the check is due again after it.
	openIDLease = 5 * time.Minute
	// openIDRetry is how soon a check that could not be completed (DNS failure) is retried.
	openIDRetry = 15 * time.Minute
	// openIDConcurrency is how many _openid checks run at once.
	openIDConcurrency = 8
)

// sweep runs batch until it handles fewer than size items, fails, or has run maxSweepBatches
// times, and returns the number of items handled.
func sweep(ctx context.Context, size int, batch func() (int, error)) (int, error) {
	total := 0
	for range maxSweepBatches {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := batch()
		total += n
		if err != nil || n < size {
			return total, err
		}
	}
	return total, nil
}

// SweepChallenges deletes challenges that expired more than Config.ChallengeRetention ago
// and returns how many.
func (s *Service) SweepChallenges(ctx context.Context) (int, error) {
	return s.sweepDeletes(ctx, s.now().Add(-s.cfg.ChallengeRetention), Tx.DeleteExpiredChallenges)
}

// SweepEvents deletes events acknowledged more than Config.EventRetention ago and returns how
// many. Unacknowledged events are kept however old they are.
func (s *Service) SweepEvents(ctx context.Context) (int, error) {
	return s.sweepDeletes(ctx, s.now().Add(-s.cfg.EventRetention), Tx.DeleteAckedEvents)
}

// sweepDeletes runs del (a Tx method deleting up to a limit of rows older than before) in
// transactions of deleteBatch rows until fewer are left.
func (s *Service) sweepDeletes(ctx context.Context, before time.Time, del func(Tx, context.Context, time.Time, int) (int, error)) (int, error) {
	return sweep(ctx, deleteBatch, func() (int, error) {
		var n int
		err := s.store.Tx(ctx, func(tx Tx) error {
			var err error
			n, err = del(tx, ctx, before, deleteBatch)
			return err
		})
		return n, err
	})
}

// SweepTransfers ends the pending transfers whose deadline passed, and returns how many: each
// is approved by the registry, or cancelled by it if a server status set while it was pending
// forbids the transfer.
func (s *Service) SweepTransfers(ctx context.Context) (int, error) {
	var moved []string
	return sweep(ctx, sweepBatch, func() (int, error) {
		var n int
		now := s.now()
		err := s.change(ctx, System, now, func(ch *change) error {
			ts, err := ch.tx.ClaimDueTransfers(ctx, now, sweepBatch)
			if err != nil {
				return err
			}
			n, moved = len(ts), moved[:0]
			for _, t := range ts {
				i, err := ch.tx.GetIdentifier(ctx, t.Identifier)
				if KindOf(err) == KindNotFound {
					// Deleting an identifier cancels its transfer, so this is not expected;
					// ending the transfer keeps it from blocking the sweep.
					if err := ch.cancelByServer(ctx, t, nil); err != nil {
						return fmt.Errorf("transfer %s: %w", t.ID, err)
					}
					continue
				}
				if err != nil {
					return fmt.Errorf("identifier of transfer %s: %w", t.ID, err)
				}
				to := TransferServerApproved
				if approvable(i) != nil {
					to = TransferServerCancelled
				}
				if _, err := ch.endTransfer(ctx, i, t, to); err != nil {
					return fmt.Errorf("transfer %s: %w", t.ID, err)
				}
				moved = append(moved, i.Name)
			}
			return nil
		})
		if err == nil {
			s.forget(moved)
		}
		return n, err
	})
}

// SweepPurges purges the identifiers whose redemption period ended and returns how many: each
// is removed and its identity retired for good, so a later registration of the name gets a
// new identity.
func (s *Service) SweepPurges(ctx context.Context) (int, error) {
	var purged []string
	return sweep(ctx, sweepBatch, func() (int, error) {
		var n int
		now := s.now()
		err := s.change(ctx, System, now, func(ch *change) error {
			ids, err := ch.tx.ClaimDuePurges(ctx, now, sweepBatch)
			if err != nil {
				return err
			}
			n, purged = len(ids), purged[:0]
			for _, i := range ids {
				if err := ch.tx.DeleteIdentifier(ctx, i.Name, i.Version); err != nil {
					return fmt.Errorf("purge %s: %w", i.Name, err)
				}
				if err := ch.tx.RetireIdentity(ctx, i.IdentityID, now); err != nil {
					return fmt.Errorf("purge %s: %w", i.Name, err)
				}
				if err := ch.journal(ctx, "identifier.purge", "identifier", i.Name, viewIdentifier(i), nil); err != nil {
					return err
				}
				if err := ch.event(ctx, i.AgentID, EventIdentifierPurged, i.Name, EventData{}); err != nil {
					return err
				}
				purged = append(purged, i.Name)
			}
			return nil
		})
		if err == nil {
			s.forget(purged)
		}
		return n, err
	})
}

func (s *Service) forget(names []string) {
	for _, n := range names {
		s.cache.forget(n)
	}
}

// SweepOpenID checks the _openid records of the identifiers due for a check, stores the
// outcomes and tells the sponsoring agent when an outcome differs from the one before; it
// returns how many it checked. A check that cannot be completed (DNS failure) keeps the last
// conclusive outcome and is retried sooner; it is not a change. Without a checker or an
// authority issuer configured it does nothing.
func (s *Service) SweepOpenID(ctx context.Context) (int, error) {
	if s.cfg.OpenID == nil || s.cfg.AuthorityIssuer == "" {
		return 0, nil
	}
	agents := make(map[string]Agent)
	return sweep(ctx, sweepBatch, func() (int, error) {
		now := s.now()
		var due []Identifier
		err := s.store.Tx(ctx, func(tx Tx) error {
			var err error
			due, err = tx.ClaimOpenIDChecks(ctx, now, now.Add(openIDLease), sweepBatch)
			return err
		})
		if err != nil || len(due) == 0 {
			return 0, err
		}
		for _, i := range due {
			if _, ok := agents[i.AgentID]; !ok {
				a, err := s.store.GetAgent(ctx, i.AgentID)
				if err != nil {
					return 0, err
				}
				agents[i.AgentID] = a
			}
		}
		// The DNS checks run outside any transaction, a few at a time.
		results := make([]OpenIDState, len(due))
		var wg sync.WaitGroup
		sem := make(chan struct{}, openIDConcurrency)
		for k, i := range due {
			if i.Has(StatusPendingDelete) {
				// Deleted: its record is expected to go; no check, and none is news.
				results[k] = i.OpenID
				results[k].CheckTime = time.Time{}
				continue
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				cctx, cancel := context.WithTimeout(ctx, s.cfg.OpenIDCheckTimeout)
				defer cancel()
				check := s.cfg.OpenID.CheckOpenID(cctx, i.DNSName, s.cfg.AuthorityIssuer)
				results[k] = judgeOpenID(check, agents[i.AgentID], s.now())
			}()
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		for k, i := range due {
			if err := s.recordOpenID(ctx, i, results[k]); err != nil {
				return k, err
			}
		}
		return len(due), nil
	})
}

// recordOpenID stores the outcome st of the check of i and, when it is a change, tells the
// sponsoring agent, in one transaction.
func (s *Service) recordOpenID(ctx context.Context, i Identifier, st OpenIDState) error {
	prev := i.OpenID
	if st.CheckTime.IsZero() {
		// Not checked (pending delete): keep the outcome, check again in an interval.
		st = prev
		st.NextCheck = s.now().Add(s.cfg.OpenIDCheckInterval)
		return s.change(ctx, System, s.now(), func(ch *change) error {
			_, err := ch.tx.SetOpenIDState(ctx, i.Name, i.IdentityID, st)
			return err
		})
	}
	if st.Status == dnsverify.OpenIDError {
		st.NextCheck = st.CheckTime.Add(min(openIDRetry, s.cfg.OpenIDCheckInterval))
		if prev.Status != "" {
			// Keep the last conclusive outcome; only the next check moves.
			prev.NextCheck = st.NextCheck
			st = prev
		}
	} else {
		st.NextCheck = st.CheckTime.Add(s.cfg.OpenIDCheckInterval)
	}
	// The first check is news only when the record is not right; later ones when it changed.
	news := st.Status != prev.Status && st.Status != dnsverify.OpenIDError &&
		(prev.Status != "" || st.Status != dnsverify.OpenIDMatches)
	return s.change(ctx, System, st.CheckTime, func(ch *change) error {
		ok, err := ch.tx.SetOpenIDState(ctx, i.Name, i.IdentityID, st)
		if err != nil || !ok || !news {
			return err // !ok: the identifier was purged meanwhile
		}
		cur, err := ch.tx.GetIdentifier(ctx, i.Name)
		if err != nil {
			return err
		}
		return ch.event(ctx, cur.AgentID, EventOpenIDRecordChanged, i.Name, EventData{OpenID: &st, PreviousOpenIDStatus: string(prev.Status), Statuses: cur.Statuses})
	})
}

// judgeOpenID turns a check into the stored outcome: the record must name this authority as
// iss (the checker's verdict) and, if it names a claims provider (clp), the sponsoring agent.
func judgeOpenID(c dnsverify.OpenIDCheck, agent Agent, now time.Time) OpenIDState {
	st := OpenIDState{
		Status: c.Status, Record: c.Record, Issuer: c.Parsed.Issuer,
		ClaimsProvider: c.Parsed.ClaimsProvider, Detail: c.Detail, CheckTime: now,
	}
	if c.Status == dnsverify.OpenIDMatches && c.Parsed.ClaimsProvider != "" {
		if want := hostOf(agent.Issuer); want != "" && hostOf(c.Parsed.ClaimsProvider) != want {
			st.Status = dnsverify.OpenIDMismatch
			st.Detail = fmt.Sprintf("the record names claims provider %q, but the identifier is sponsored by agent %s (%s)", c.Parsed.ClaimsProvider, agent.ID, want)
		}
	}
	return st
}

// hostOf returns the lowercase host of a host name or URL, without port or trailing dot.
func hostOf(s string) string {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "://") {
		if u, err := url.Parse(s); err == nil {
			s = u.Hostname()
		}
	} else if h, _, ok := strings.Cut(s, "/"); ok {
		s = h
	}
	if h, _, ok := strings.Cut(s, ":"); ok {
		s = h
	}
	return strings.ToLower(strings.TrimSuffix(s, "."))
}

// WorkerConfig configures RunWorker.
type WorkerConfig struct {
	// Interval is the time between two rounds of sweeps. Default 10s.
	Interval time.Duration
	Logger   *slog.Logger
	// Observe, if set, is told the outcome of every sweep (for metrics).
	Observe func(job string, n int, took time.Duration, err error)
}

// RunWorker runs every sweep once per interval until ctx ends. The _openid checks, which wait
// on the network, run on a loop of their own, so that they never hold up the lifecycle sweeps
// (due transfers, purges, expired challenges, old events and request outcomes). Each loop's
// first round starts at a random offset within the interval, so instances started together
// spread out.
func (s *Service) RunWorker(ctx context.Context, cfg WorkerConfig) {
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		runJobs(ctx, cfg, []job{
			{"transfers", s.SweepTransfers},
			{"purges", s.SweepPurges},
			{"challenges", s.SweepChallenges},
			{"events", s.SweepEvents},
			{"requests", s.SweepRequests},
		})
	})
	wg.Go(func() { runJobs(ctx, cfg, []job{{"openid", s.SweepOpenID}}) })
	wg.Wait()
}

// job is one background sweep.
type job struct {
	name string
	run  func(context.Context) (int, error)
}

// runJobs runs jobs one after another, once per interval, until ctx ends.
func runJobs(ctx context.Context, cfg WorkerConfig, jobs []job) {
	wait := time.Duration(rand.Int64N(int64(cfg.Interval)))
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = cfg.Interval
		for _, j := range jobs {
			start := time.Now()
			n, err := j.run(ctx)
			took := time.Since(start)
			if ctx.Err() != nil {
				return
			}
			if cfg.Observe != nil {
				cfg.Observe(j.name, n, took, err)
			}
			switch {
			case KindOf(err) == KindUnavailable:
				// The store logs an outage once; a sweep per interval would repeat it.
				cfg.Logger.Debug("background job failed", "job", j.name, "handled", n, "err", err)
			case err != nil && !errors.Is(err, context.Canceled):
				cfg.Logger.Error("background job failed", "job", j.name, "handled", n, "err", err)
			case n > 0:
				cfg.Logger.Info("background job", "job", j.name, "handled", n, "took", took)
			}
		}
	}
}
