package sqlite

import (
	"context"
	"database/sql"
	"errors"
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
		return 0, 0, fmt.Errorf("sqlite: prune: %w", err)
	}
	// The first audit row to keep: the first written at or after the cut, else the newest.
	var keep sql.NullInt64
	err = s.reader.QueryRowContext(ctx, `SELECT seq FROM audit WHERE at >= ? ORDER BY seq LIMIT 1`, cut).Scan(&keep)
	if errors.Is(err, sql.ErrNoRows) {
		err = s.reader.QueryRowContext(ctx, `SELECT MAX(seq) FROM audit`).Scan(&keep)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("sqlite: prune: %w", err)
	}
	if !keep.Valid {
		return 0, 0, nil // no audit yet, so no event is known to be old
	}
	// Events up to the newest one the pruned records name arrived before the cut.
	var eventCut, lastEvent sql.NullInt64
	if err := s.reader.QueryRowContext(ctx, `SELECT MAX(event_seq) FROM audit WHERE seq < ?`, keep.Int64).Scan(&eventCut); err != nil {
		return 0, 0, fmt.Errorf("sqlite: prune: %w", err)
	}
	if err := s.reader.QueryRowContext(ctx, `SELECT MAX(seq) FROM events`).Scan(&lastEvent); err != nil {
		return 0, 0, fmt.Errorf("sqlite: prune: %w", err)
	}
	if audit, err = s.deleteChunks(ctx, `DELETE FROM audit WHERE seq IN
		(SELECT seq FROM audit WHERE seq < ? ORDER BY seq LIMIT ?) RETURNING n`, keep.Int64); err != nil {
		return 0, audit, err
	}
	if eventCut.Valid && lastEvent.Valid {
		events, err = s.deleteChunks(ctx, `DELETE FROM events WHERE seq IN
			(SELECT seq FROM events WHERE seq <= ? ORDER BY seq LIMIT ?) RETURNING 1`, min(eventCut.Int64, lastEvent.Int64-1))
	}
	return events, audit, err
}

// deleteChunks runs query (which deletes up to its second argument's rows below its first and
// returns a count per row) in transactions of its own until it deletes nothing, and sums the
// counts.
func (s *Store) deleteChunks(ctx context.Context, query string, below int64) (int64, error) {
	var total int64
	for {
		n, err := s.deleteChunk(ctx, query, below)
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
}

func (s *Store) deleteChunk(ctx context.Context, query string, below int64) (int64, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("sqlite: prune: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, query, below, store.PruneChunk)
	if err != nil {
		return 0, fmt.Errorf("sqlite: prune: %w", err)
	}
	var n int64
	for rows.Next() {
		var k int64
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return 0, fmt.Errorf("sqlite: prune: %w", err)
		}
		n += k
	}
	if err := rows.Close(); err != nil {
		return 0, fmt.Errorf("sqlite: prune: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("sqlite: prune: %w", err)
	}
	return n, nil
}

var _ store.Sizer = (*Store)(nil)

// Size implements store.Sizer: the pages the database uses, as committed (its write-ahead log
// included, its free pages not).
func (s *Store) Size(ctx context.Context) (int64, error) {
	if err := s.gate.Enter(); err != nil {
		return 0, err
	}
	defer s.gate.Leave()
	var n int64
	if err := s.reader.QueryRowContext(ctx, `SELECT (c.page_count - f.freelist_count) * p.page_size
		FROM pragma_page_count() AS c, pragma_freelist_count() AS f, pragma_page_size() AS p`).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: size: %w", err)
	}
	return n, nil
}
