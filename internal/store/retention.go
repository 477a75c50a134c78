package store

import (
	"context"
	"log/slog"
	"time"
)

// Pruner is a store that forgets old history (retention).
type Pruner interface {
	// Prune deletes the audit records written before before and the events that arrived
	// before them, a bounded number of rows per transaction so that writers are not held up.
	// The newest event and the newest audit record always stay (their seqs continue the
	// numbering). Records of one event go together, as their first one's time says. It
	// returns how many events and audit records it deleted.
	Prune(ctx context.Context, before time.Time) (events, audit int64, err error)
}

// Sizer is a store that can say how much storage it takes.
type Sizer interface {
	// Size returns the bytes the store's events, audit and agents take on disk.
	Size(ctx context.Context) (int64, error)
}

// DefaultRetention is how long events and audit records are kept unless configured otherwise.
const DefaultRetention = 30 * 24 * time.Hour

// PruneChunk is how many rows one prune transaction deletes at most.
const PruneChunk = 5000

// RunRetention prunes s every interval (and once at the start) of what is older than keep,
// until ctx ends. A store that is not a Pruner, or keep <= 0, keeps everything.
func RunRetention(ctx context.Context, s Store, keep, interval time.Duration, now func() time.Time, log *slog.Logger) {
	p, ok := s.(Pruner)
	if !ok || keep <= 0 {
		return
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		before := now().Add(-keep)
		events, audit, err := p.Prune(ctx, before)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("pruning old events and audit records failed; retrying later", "before", before, "err", err)
		case events+audit > 0:
			log.Info("pruned old history", "before", before, "events", events, "audit_records", audit)
		}
		t.Reset(interval)
	}
}
