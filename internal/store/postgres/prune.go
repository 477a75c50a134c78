package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/omnipresence/omnipresence/internal/store"
)

var _ store.Pruner = (*Store)(nil)

// Prune implements store.Pruner.
func (s *Store) Prune(ctx context.Context, before time.Time) (events, audit int64, err error) {
	if err := s.gate.Enter(); err != nil {
		return 0, 0, err
	}
	defer s.gate.Leave()
	cut, err := toNanos(before)
	if err != nil {
		return 0, 0, fmt.Errorf("postgres: prune: %w", err)
	}
	// The first audit row to keep: the first written at or after the cut, else the newest.
	var keep *int64
	if err := s.pool.QueryRow(ctx, `SELECT COALESCE((SELECT seq FROM audit WHERE at_ns >= $1 ORDER BY seq LIMIT 1),
		(SELECT MAX(seq) FROM audit))`, cut).Scan(&keep); err != nil {
		return 0, 0, fmt.Errorf("postgres: prune: %w", err)
	}
	if keep == nil {
		return 0, 0, nil // no audit yet, so no event is known to be old
	}
	// Events up to the newest one the pruned records name arrived before the cut.
	var eventCut, lastEvent *int64
	if err := s.pool.QueryRow(ctx, `SELECT (SELECT MAX(event_seq) FROM audit WHERE seq < $1), (SELECT MAX(seq) FROM events)`,
		*keep).Scan(&eventCut, &lastEvent); err != nil {
		return 0, 0, fmt.Errorf("postgres: prune: %w", err)
	}
	if audit, err = s.deleteChunks(ctx, `WITH gone AS (DELETE FROM audit WHERE seq IN
		(SELECT seq FROM audit WHERE seq < $1 ORDER BY seq LIMIT $2) RETURNING n) SELECT COALESCE(SUM(n), 0) FROM gone`, *keep); err != nil {
		return 0, audit, err
	}
	if eventCut != nil && lastEvent != nil {
		events, err = s.deleteChunks(ctx, `WITH gone AS (DELETE FROM events WHERE seq IN
			(SELECT seq FROM events WHERE seq <= $1 ORDER BY seq LIMIT $2) RETURNING 1) SELECT count(*) FROM gone`,
			min(*eventCut, *lastEvent-1))
	}
	return events, audit, err
}

// deleteChunks runs query (which deletes up to $2 rows below $1 and returns a count) until it
// deletes nothing, and sums the counts. Each runs in a transaction of its own.
func (s *Store) deleteChunks(ctx context.Context, query string, below int64) (int64, error) {
	var total int64
	for {
		var n int64
		if err := s.pool.QueryRow(ctx, query, below, store.PruneChunk).Scan(&n); err != nil {
			return total, fmt.Errorf("postgres: prune: %w", err)
		}
		total += n
		if n == 0 {
			return total, nil
		}
	}
}

var _ store.Sizer = (*Store)(nil)

// Size implements store.Sizer: the tables of events, audit and agents with their indexes.
func (s *Store) Size(ctx context.Context) (int64, error) {
	if err := s.gate.Enter(); err != nil {
		return 0, err
	}
	defer s.gate.Leave()
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT pg_total_relation_size('events') + pg_total_relation_size('audit')
		+ pg_total_relation_size('agents')`).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: size: %w", err)
	}
	return n, nil
}
