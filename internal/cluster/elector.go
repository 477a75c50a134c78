// Package cluster elects one leader among the replicas of a service through a lease that the
// shared database keeps (postgres.Store's), and runs the leader's work while the lease is
// this replica's: the work's context ends when the lease is lost, cannot be renewed before it
// expires, or at shutdown, and the lease is then given up so that another replica takes over.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/omnipresence/omnipresence/internal/pause"
)

// Lease is the lease of the shared database.
type Lease interface {
	// AcquireLease makes holder the leader for ttl unless another replica holds an unexpired
	// lease, and returns the new fencing epoch.
	AcquireLease(ctx context.Context, holder string, ttl time.Duration) (epoch int64, ok bool, err error)
	// RenewLease extends holder's lease of epoch; ok is false once another replica took it.
	RenewLease(ctx context.Context, holder string, epoch int64, ttl time.Duration) (ok bool, err error)
	// ReleaseLease gives up holder's lease of epoch.
	ReleaseLease(ctx context.Context, holder string, epoch int64) error
}

// Options configure Run.
type Options struct {
	// ID names this replica; required.
	ID string
	// TTL is the lease's time: a leader that stops renewing is replaced within it (and a poll
	// of TTL/4). Required.
	TTL time.Duration
	// Lease is the database's lease; required.
	Lease Lease
	// Lead runs the leader's work for epoch until ctx ends; required. It should return soon
	// after: a replica whose work outlives its lease by StepDownTimeout makes Run fail.
	Lead func(ctx context.Context, epoch int64) error
	// Fatal reports whether an error of Lead should end Run rather than a term (a
	// configuration error); nil means none is.
	Fatal func(error) bool
	// StepDownTimeout bounds how long Lead may take to return once its context ended
	// (default 30s).
	StepDownTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Run campaigns for the lease until ctx ends, running Lead whenever this replica holds it. It
// returns nil at shutdown, a fatal error of Lead, or an error when Lead did not stop in time.
func Run(ctx context.Context, o Options) error {
	if o.ID == "" || o.TTL <= 0 || o.Lease == nil || o.Lead == nil {
		return errors.New("cluster: an id, a lease time, a lease and the leader's work are required")
	}
	if o.StepDownTimeout <= 0 {
		o.StepDownTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	poll := max(o.TTL/4, 10*time.Millisecond)
	failing := false
	for ctx.Err() == nil {
		start := time.Now()
		actx, cancel := context.WithTimeout(ctx, o.TTL)
		epoch, ok, err := o.Lease.AcquireLease(actx, o.ID, o.TTL)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			if !failing {
				o.Logger.Warn("cannot reach the database to campaign for the lead; retrying", "replica", o.ID, "err", err)
			}
			failing = true
		case ok:
			failing = false
			if err := term(ctx, o, epoch, start); err != nil {
				return err
			}
			continue
		default:
			if failing {
				o.Logger.Info("the database answers again", "replica", o.ID)
			}
			failing = false
		}
		// Jitter keeps replicas that started together from polling in step.
		if !pause.For(ctx, poll/2+rand.N(poll/2+1)) {
			break
		}
	}
	return nil
}

// term runs one leadership: Lead until the lease is lost or ctx ends, then the step-down.
func term(ctx context.Context, o Options, epoch int64, acquired time.Time) error {
	log := o.Logger.With("replica", o.ID, "epoch", epoch)
	log.Info("leading: this replica took the lease; starting the engine and the vendor watchers", "lease", o.TTL)
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- o.Lead(lctx, epoch) }()
	validUntil := acquired.Add(o.TTL)
	every := max(o.TTL/3, 5*time.Millisecond)
	tick := time.NewTicker(every)
	defer tick.Stop()
	var leadErr error
	reason := ""
loop:
	for {
		select {
		case <-ctx.Done():
			reason = "shutting down"
			break loop
		case err := <-done:
			done <- err
			reason = "the leader's work ended"
			if err != nil {
				reason += ": " + err.Error()
			}
			leadErr = err
			break loop
		case <-tick.C:
			sent := time.Now()
			rctx, cancel := context.WithDeadline(ctx, validUntil)
			ok, err := o.Lease.RenewLease(rctx, o.ID, epoch, o.TTL)
			cancel()
			switch {
			case err == nil && ok:
				validUntil = sent.Add(o.TTL)
			case err == nil:
				reason = "another replica took the lease over"
				break loop
			case ctx.Err() != nil:
				reason = "shutting down"
				break loop
			case !time.Now().Add(every).Before(validUntil):
				// The next attempt would come too late: stop acting before the lease ends.
				reason = "the lease could not be renewed and is about to expire: " + err.Error()
				break loop
			default:
				log.Warn("renewing the lease failed; retrying until it expires", "err", err,
					"expires_in", time.Until(validUntil).Round(time.Millisecond))
			}
		}
	}
	if ctx.Err() != nil {
		log.Info("stepping down: " + reason)
	} else {
		log.Warn("stepping down: " + reason)
	}
	stop()
	select {
	case err := <-done:
		if leadErr == nil {
			leadErr = err
		}
	case <-time.After(o.StepDownTimeout):
		return fmt.Errorf("cluster: the leader's work did not stop within %v of losing the lease; exiting so that it cannot act as leader", o.StepDownTimeout)
	}
	// Giving the lease up lets another replica take over at once rather than when it expires.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.TTL)
	if err := o.Lease.ReleaseLease(rctx, o.ID, epoch); err != nil {
		log.Warn("releasing the lease failed; another replica takes over when it expires", "err", err)
	}
	cancel()
	if leadErr != nil && o.Fatal != nil && o.Fatal(leadErr) {
		return leadErr
	}
	if leadErr != nil && ctx.Err() == nil {
		log.Warn("the leader's work failed; campaigning again", "err", leadErr)
		// A replica whose work fails at once should not take the lease straight back.
		pause.For(ctx, o.TTL)
	}
	return nil
}
